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


# Alerts (monitoring.alert_rules, monitoring.alerts, monitoring.webhooks) ----------------------


class AlertMetric(models.TextChoices):
    DATA_DRIFT = "data_drift", "Data drift (a station's latest drift check)"
    DISAGREEMENT_DRIFT = "disagreement_drift", "Disagreement drift (concept drift)"
    ESCAPE_RATE_DRIFT = "escape_rate_drift", "Miss-rate drift (concept drift)"
    ESCAPES = "escapes", "Escapes found"
    FAIL_SAFE_RATE = "fail_safe_rate", "Fail-safe rate"
    REVIEW_BACKLOG = "review_backlog", "Review backlog"
    REVIEW_WAIT = "review_wait", "Oldest open review item"
    STATION_SILENT = "station_silent", "Station gone silent"
    PREDICTION_QUEUE_AGE = "prediction_queue_age", "Oldest item waiting for its prediction"
    ROLLOUT_ROLLED_BACK = "rollout_rolled_back", "Challenger rolled back by its gate"


class AlertRule(models.Model):
    """One condition watched on a line. What threshold, window and min_items mean depends on
    the metric (monitoring.alert_rules.METRICS says, and the rules page shows it); the
    defaults are created by alert_rules.ensure_default_rules."""

    line = models.ForeignKey("inspection.Line", on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=30, choices=AlertMetric.choices)
    threshold = models.FloatField()
    window = models.PositiveIntegerField()
    min_items = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["line", "metric"], name="alert_rule_unique_metric")
        ]
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.line_id} {self.metric}"


class AlertState(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class Alert(models.Model):
    """A rule's condition seen on a line (or one of its stations): open until resolved, by a
    person or by the evaluation once the condition clears. One unresolved alert per rule and
    station (dedup_key, a partial unique index), so a condition that lasts raises one alert."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    line = models.ForeignKey("inspection.Line", on_delete=models.CASCADE, related_name="+")
    station = models.ForeignKey(
        "inspection.Station", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    metric = models.CharField(max_length=30, choices=AlertMetric.choices)
    dedup_key = models.CharField(max_length=60)
    state = models.CharField(max_length=15, choices=AlertState.choices, default=AlertState.OPEN)
    value = models.FloatField()
    threshold = models.FloatField()
    message = models.TextField()
    last_value = models.FloatField(null=True, blank=True)
    last_seen_at = models.DateTimeField()
    opened_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.CharField(max_length=150, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(
        max_length=150, blank=True, help_text="A user name, or 'monitoring' when it cleared."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["dedup_key"],
                condition=~models.Q(state="resolved"),
                name="alert_one_unresolved_per_key",
            )
        ]
        indexes = [models.Index(fields=["line", "state"], name="alert_line_state")]
        ordering = ["-opened_at", "-pk"]

    def __str__(self) -> str:
        return f"alert #{self.pk} {self.metric} ({self.state})"

    @property
    def is_resolved(self) -> bool:
        return self.state == AlertState.RESOLVED


class MuteWindow(models.Model):
    """A planned pause (changeover, maintenance): no alert of the line opens inside it."""

    line = models.ForeignKey("inspection.Line", on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.TextField()
    created_by = models.CharField(max_length=150)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-start"]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="mute_ends")
        ]

    def __str__(self) -> str:
        return f"{self.line_id} muted {self.start:%Y-%m-%d %H:%M}–{self.end:%H:%M}"


class LineMonitoring(models.Model):
    """A line's monitoring settings: where its alerts are sent, how it steps back on its own,
    and since when its drift and concept figures count (the reference reset)."""

    line = models.OneToOneField("inspection.Line", on_delete=models.CASCADE, related_name="+")
    reference_since = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Drift windows and concept references count items from here.",
    )
    webhook_url = models.URLField(max_length=500, blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)
    step_back_enabled = models.BooleanField(
        default=True, help_text="An escape or disagreement alert lowers the level one step."
    )
    step_back_floor = models.CharField(
        max_length=20,
        default="assist",
        help_text="The lowest level stepping back goes to.",
    )
    drift_audit_fraction = models.FloatField(
        default=0.2, help_text="A data-drift alert raises the audit rate to this (0: off)."
    )
    drift_lowers_level = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"monitoring of {self.line_id}"


class AlertEvent(models.TextChoices):
    OPENED = "opened", "Opened"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Gave up"


class WebhookDelivery(models.Model):
    """One alert event for the line's webhook: written with the event, in its transaction, so
    nothing is lost on a restart; sent after commit and retried with backoff by
    monitoring.webhooks. One row per alert and event: never sent twice for the same event."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=15, choices=AlertEvent.choices)
    url = models.URLField(max_length=500)
    body = models.TextField()
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["alert", "event"], name="webhook_one_per_event")
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="webhook_due",
            )
        ]

    def __str__(self) -> str:
        return f"alert #{self.alert_id} {self.event}: {self.state}"
