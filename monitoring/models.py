"""Time buckets of a line's figures, written only by monitoring.aggregation.

Each bucket is derived from the inspection tables (inspections, predictions, decisions, review
items, escapes) and can be recomputed from them at any time: the job rewrites the last minutes
each run, so nothing is lost when it or a worker restarts, and the station path writes nothing
here. Minute buckets feed the hour, shift and day views and are kept for a few days; hour
buckets (sums of the minutes) feed the 30-day view.
"""

from django.db import models


class Width(models.IntegerChoices):
    MINUTE = 60, "Minute"
    HOUR = 3600, "Hour"


class Bucket(models.Model):
    """One line's figures over [start, start + width).

    Counts are by the time of the event they count: items by received_at, latency and the
    fail-safe by routed_at, model time by the prediction's created_at, decisions and review
    decisions by their decided_at, escapes by recorded_at. Latencies are histograms
    (monitoring.histograms) so any range's percentiles come from summed bins.
    """

    line = models.ForeignKey("inspection.Line", on_delete=models.CASCADE, related_name="+")
    width_s = models.PositiveIntegerField(choices=Width.choices)
    start = models.DateTimeField()
    items = models.PositiveIntegerField(default=0, help_text="Items received from stations.")
    station_items = models.JSONField(default=dict, help_text="Items per station id.")
    routed = models.PositiveIntegerField(default=0, help_text="Items given their route.")
    route_latency = models.JSONField(
        default=dict, help_text="Histogram of routed_at - received_at (ms): the station's wait."
    )
    predictions = models.PositiveIntegerField(default=0)
    model_latency = models.JSONField(default=dict, help_text="Histogram of the model's time (ms).")
    accepts = models.PositiveIntegerField(default=0)
    rejects = models.PositiveIntegerField(default=0)
    decided_by_model = models.PositiveIntegerField(default=0)
    decided_by_human = models.PositiveIntegerField(default=0)
    decided_by_fail_safe = models.PositiveIntegerField(default=0)
    fail_safes = models.PositiveIntegerField(default=0, help_text="Items routed by the fail-safe.")
    fail_safe_reasons = models.JSONField(default=dict, help_text="Fail-safe items per reason.")
    review_backlog = models.PositiveIntegerField(
        default=0, help_text="Open review items at the bucket's end."
    )
    review_backlog_peak = models.PositiveIntegerField(
        default=0, help_text="The most open review items at the end of any minute of it."
    )
    reviews_decided = models.PositiveIntegerField(default=0)
    review_wait = models.JSONField(
        default=dict, help_text="Histogram of a review decision's decided_at - received_at (ms)."
    )
    # decided by a human who did not see the model (shadow, audit, blind): the unbiased figure
    unbiased_items = models.PositiveIntegerField(default=0)
    unbiased_agreeing = models.PositiveIntegerField(default=0)
    # decided with the model in view (assist, partial's unsure band): reported apart
    seen_items = models.PositiveIntegerField(default=0)
    seen_agreeing = models.PositiveIntegerField(default=0)
    escapes = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["line", "width_s", "start"], name="monitoring_bucket_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.line_id} {self.get_width_s_display()} {self.start:%Y-%m-%d %H:%M}"


class AggregationCursor(models.Model):
    """How far the periodic job has aggregated: its next run starts from here (less the
    trailing window), so a job stopped for hours catches up on its first run back. Its row
    lock also keeps two runs from writing the same buckets at once."""

    name = models.CharField(max_length=30, unique=True)
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name}: {self.until:%Y-%m-%d %H:%M:%S}"
