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


class DriftReference(models.Model):
    """What a model version's training data looks like to it (ml.engine.drift.Reference: per
    statistic and training gain, the values of a sample of its dataset version's images, their
    projected embeddings, its probabilities, the schema it saw). Built once per version by
    monitoring.drift, the only writer; derived, so deleting it only means building it again."""

    model_version = models.OneToOneField(
        "ml.ModelVersion", on_delete=models.CASCADE, related_name="+"
    )
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, on_delete=models.SET_NULL, related_name="+"
    )
    items = models.PositiveIntegerField()
    jitter = models.FloatField(help_text="The training's brightness gain range, 1 +- jitter.")
    data = models.JSONField()
    build_seconds = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"reference of {self.model_version_id} ({self.items} items)"


class DriftVerdict(models.TextChoices):
    OK = "ok", "No drift"
    DATA_DRIFT = "data_drift", "Data drift"
    PREDICTION_DRIFT = "prediction_drift", "Prediction drift"
    TOO_FEW_ITEMS = "too_few_items", "Too few items to judge"


class DriftCheck(models.Model):
    """One window of a station's served items (the last `items` with a drift record) tested
    against its model's reference by monitoring.drift, the only writer. `results` is
    ml.engine.drift.compare's output: per test its p-value before and after Holm's
    correction, the embedding's AUC, the prediction histograms and reject rates."""

    line = models.ForeignKey("inspection.Line", on_delete=models.CASCADE, related_name="+")
    station = models.ForeignKey("inspection.Station", on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.CASCADE, related_name="+")
    reference = models.ForeignKey(DriftReference, on_delete=models.CASCADE, related_name="checks")
    window_start = models.DateTimeField(help_text="The window's first prediction.")
    window_end = models.DateTimeField(help_text="The window's last prediction.")
    last_prediction_id = models.BigIntegerField()
    items = models.PositiveIntegerField()
    verdict = models.CharField(max_length=20, choices=DriftVerdict.choices)
    data_drift = models.BooleanField()
    prediction_drift = models.BooleanField()
    results = models.JSONField()
    policy = models.JSONField(default=dict)
    checked_at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["line", "station", "-checked_at"], name="drift_check_recent")
        ]

    def __str__(self) -> str:
        return f"{self.station_id} {self.window_end:%Y-%m-%d %H:%M}: {self.verdict}"
