from django.conf import settings
from django.db import models
from django.db.models import F, Q

DEFAULT_DEFECT_CLASSES = ["scratch", "dent", "spot", "crack"]


class AutomationLevel(models.TextChoices):
    HUMAN_ONLY = "human_only", "Human only"
    SHADOW = "shadow", "Shadow"
    ASSIST = "assist", "Assist"
    PARTIAL = "partial", "Partial automation"
    FULL = "full", "Full automation"


class FailSafeAction(models.TextChoices):
    # Accept is deliberately absent: Loupe never auto-accepts an item it could not judge.
    REVIEW = "review", "Send to review"
    REJECT = "reject", "Reject"


class Line(models.Model):
    name = models.CharField(max_length=100, unique=True)
    automation_level = models.CharField(
        max_length=20, choices=AutomationLevel.choices, default=AutomationLevel.HUMAN_ONLY
    )
    accept_threshold = models.FloatField(default=0.2)
    reject_threshold = models.FloatField(default=0.8)
    latency_budget_ms = models.PositiveIntegerField(default=1000)
    fail_safe_action = models.CharField(
        max_length=10, choices=FailSafeAction.choices, default=FailSafeAction.REVIEW
    )
    audit_fraction = models.FloatField(
        default=0.02,
        help_text="Share of the model's automatic decisions (partial, full) a human audits, and "
        "of assist and partial review items shown to the human without the model (blind).",
    )
    agreement_target = models.FloatField(
        default=0.95,
        help_text="Raising the level above assist needs the 95% lower bound of the unbiased "
        "human-model agreement at or above this.",
    )
    escape_rate_limit = models.FloatField(
        default=0.25,
        help_text="Raising the level above assist needs the 95% upper bound of the model's miss "
        "rate (defective items, by the human's unbiased decision, that the model would have "
        "accepted) at or below this.",
    )
    defect_classes = models.JSONField(default=list)
    active_model = models.ForeignKey(
        "ml.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="lines"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="lines",
        help_text="Users who work this line; they see only their lines' items and figures.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="line_thresholds_ordered",
                condition=Q(accept_threshold__gte=0)
                & Q(reject_threshold__lte=1)
                & Q(accept_threshold__lt=F("reject_threshold")),
            ),
            models.CheckConstraint(
                name="line_audit_fraction_range",
                condition=Q(audit_fraction__gte=0) & Q(audit_fraction__lte=1),
            ),
            models.CheckConstraint(
                name="line_agreement_target_range",
                condition=Q(agreement_target__gte=0) & Q(agreement_target__lte=1),
            ),
            models.CheckConstraint(
                name="line_escape_rate_limit_range",
                condition=Q(escape_rate_limit__gte=0) & Q(escape_rate_limit__lte=1),
            ),
            models.CheckConstraint(
                name="line_budget_positive", condition=Q(latency_budget_ms__gt=0)
            ),
            models.CheckConstraint(
                name="line_fail_safe_never_accept",
                condition=Q(fail_safe_action__in=["review", "reject"]),
            ),
        ]

    def __str__(self) -> str:
        return self.name


class LineChange(models.Model):
    """Audit log of a line's settings: who changed what, from what, to what."""

    # PROTECT: the audit log outlives nothing it describes; a line with history is not deleted
    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="changes")
    field = models.CharField(max_length=50)
    old_value = models.CharField(max_length=200, blank=True)
    new_value = models.CharField(max_length=200, blank=True)
    changed_by = models.CharField(max_length=150, help_text="User name or 'cli'.")
    reason = models.TextField(blank=True)
    changed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-changed_at"]

    def __str__(self) -> str:
        return f"{self.line}: {self.field} {self.old_value} -> {self.new_value}"


class RolloutMode(models.TextChoices):
    # "mirror", not "shadow": the automation level of that name is about humans, this one
    # about a second model, and a page that says "shadow" for both confuses a supervisor
    MIRROR = "mirror", "Mirror (the challenger predicts beside the active model, never decides)"
    CANARY = "canary", "Canary (the challenger decides a share of items)"
    BLUE_GREEN = "blue_green", "Blue-green (one switch moves all items to either model)"


class RolloutState(models.TextChoices):
    RUNNING = "running", "Running"
    PROMOTED = "promoted", "Promoted (the challenger became the active model)"
    ROLLED_BACK = "rolled_back", "Rolled back"
    STOPPED = "stopped", "Stopped"


class Rollout(models.Model):
    """A challenger model beside a line's active model; at most one running per line.

    `share` is the part of new items the challenger decides (canary steps, or 0 and 1 for
    blue-green); a mirror challenger decides none. Written only by inspection.rollouts; every
    change also goes to the line's audit log (LineChange).
    """

    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="rollouts")
    challenger = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    mode = models.CharField(max_length=12, choices=RolloutMode.choices)
    share = models.FloatField(default=0.0)
    audit_fraction = models.FloatField(
        default=0.2, help_text="Share of the challenger's automatic decisions a human audits."
    )
    state = models.CharField(
        max_length=12, choices=RolloutState.choices, default=RolloutState.RUNNING
    )
    started_by = models.CharField(max_length=150)
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=150, blank=True, help_text="'monitoring': the gate.")
    ended_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["line"], condition=Q(state="running"), name="rollout_one_running_per_line"
            ),
            models.CheckConstraint(
                name="rollout_share_range", condition=Q(share__gte=0) & Q(share__lte=1)
            ),
            models.CheckConstraint(
                name="rollout_audit_fraction_range",
                condition=Q(audit_fraction__gte=0) & Q(audit_fraction__lte=1),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_mode_display().split(' (')[0]} of {self.challenger_id} on {self.line}"


class Station(models.Model):
    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="stations")
    name = models.CharField(max_length=100)
    # sha256 of the token: tokens are 256-bit random, so a plain hash cannot be brute-forced.
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(
        max_length=12, help_text="First characters, to tell tokens apart."
    )
    is_enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["line__name", "name"]
        constraints = [models.UniqueConstraint(fields=["line", "name"], name="station_unique_name")]

    def __str__(self) -> str:
        return f"{self.line.name}/{self.name}"


class InspectionStatus(models.TextChoices):
    RECEIVED = "received", "Received, waiting for routing"
    DECIDED = "decided", "Decided"
    IN_REVIEW = "in_review", "Waiting for a human"
    # a batch prediction's image put on the labeling queue: labeled, never routed or decided,
    # and outside every figure of the line's live work
    OFFLINE = "offline", "Offline image (batch prediction)"


class Outcome(models.TextChoices):
    ACCEPT = "accept", "Accept"
    REJECT = "reject", "Reject"


class DecidedBy(models.TextChoices):
    MODEL = "model", "Model"
    HUMAN = "human", "Human"
    FAIL_SAFE = "fail_safe", "Fail-safe"


class FailSafeReason(models.TextChoices):
    NONE = "", "None"
    NO_MODEL = "no_model", "No active model"
    MODEL_ERROR = "model_error", "Model failed"
    BUDGET_MISSED = "budget_missed", "Latency budget missed"
    ENQUEUE_FAILED = "enqueue_failed", "Could not reach the workers"


class Inspection(models.Model):
    """One product image from one station.

    The routing policy fields (automation level, thresholds, budget, fail-safe) are copied from
    the line when the image arrives: the item is judged, and later traced, under the routing
    policy in force then.
    """

    station = models.ForeignKey(Station, on_delete=models.PROTECT, related_name="inspections")
    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="inspections")
    external_id = models.CharField(max_length=128)
    metadata = models.JSONField(default=dict, blank=True)
    image = models.FileField(max_length=300)
    image_sha256 = models.CharField(max_length=64, db_index=True)
    image_format = models.CharField(max_length=10)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    received_at = models.DateTimeField(db_index=True)
    status = models.CharField(
        max_length=20, choices=InspectionStatus.choices, default=InspectionStatus.RECEIVED
    )
    automation_level = models.CharField(max_length=20, choices=AutomationLevel.choices)
    accept_threshold = models.FloatField()
    reject_threshold = models.FloatField()
    latency_budget_ms = models.PositiveIntegerField()
    fail_safe_action = models.CharField(max_length=10, choices=FailSafeAction.choices)
    audit_fraction = models.FloatField()
    model_version = models.ForeignKey(
        "ml.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The model version whose output routed this item.",
    )
    serving_model = models.ForeignKey(
        "ml.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The rollout's challenger, where it was chosen to answer this item when the "
        "item arrived (so a redelivered task asks it again); empty: the line's active model.",
    )
    rollout = models.ForeignKey(Rollout, null=True, blank=True, on_delete=models.PROTECT)
    rollout_share = models.FloatField(
        null=True, blank=True, help_text="The rollout's step (challenger share) when it arrived."
    )
    fail_safe_reason = models.CharField(
        max_length=20, choices=FailSafeReason.choices, default="", blank=True
    )
    routed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            # The station's external_id is its idempotency key for retries.
            models.UniqueConstraint(
                fields=["station", "external_id"], name="inspection_unique_external_id"
            ),
        ]
        indexes = [
            # the few unrouted items, found without scanning the table (route_overdue)
            models.Index(
                fields=["received_at"],
                condition=Q(status="received"),
                name="inspection_unrouted",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.station} #{self.external_id}"


class DecisionQuerySet(models.QuerySet):
    def final(self, now=None):
        """Decisions that can no longer be undone: what stations see, labels and counts use."""
        from django.utils import timezone

        return self.filter(final_at__lte=now or timezone.now())


class Decision(models.Model):
    """The final decision of an inspection. One per inspection, enforced by the unique key.

    Written only by inspection.decisions. `final_at` is when it can no longer be undone: its
    decided_at for the model, the fail-safe and imports; the end of the undo window for a
    human. Until then the station is told the item is still in review.
    """

    inspection = models.OneToOneField(Inspection, on_delete=models.CASCADE, related_name="decision")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    decided_by = models.CharField(max_length=10, choices=DecidedBy.choices)
    inspector = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    model_version = models.ForeignKey(
        "ml.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField()
    final_at = models.DateTimeField(db_index=True)

    objects = DecisionQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                name="decision_final_not_before_decided", condition=Q(final_at__gte=F("decided_at"))
            ),
            models.CheckConstraint(
                name="decision_human_has_inspector",
                condition=~Q(decided_by="human") | Q(inspector__isnull=False),
            ),
            models.CheckConstraint(
                name="decision_model_has_version",
                condition=~Q(decided_by="model") | Q(model_version__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.outcome} by {self.decided_by} on inspection {self.inspection_id}"

    def is_final(self, now=None) -> bool:
        from django.utils import timezone

        return self.final_at <= (now or timezone.now())


class PredictionRole(models.TextChoices):
    PRIMARY = "primary", "Primary (the line's active model)"
    # a mirror rollout's challenger, recorded beside the active model's answer, never routed
    CHALLENGER = "challenger", "Challenger (recorded only)"
    AUDIT = "audit", "Audit"


class Prediction(models.Model):
    inspection = models.ForeignKey(Inspection, on_delete=models.CASCADE, related_name="predictions")
    model_version = models.ForeignKey("ml.ModelVersion", on_delete=models.PROTECT, related_name="+")
    role = models.CharField(
        max_length=10, choices=PredictionRole.choices, default=PredictionRole.PRIMARY
    )
    defect_probability = models.FloatField()
    regions = models.JSONField(default=list)
    latency_ms = models.FloatField()
    is_late = models.BooleanField(default=False, help_text="Finished after the latency budget.")
    input_stats = models.JSONField(
        default=dict,
        blank=True,
        help_text="The image's drift record (ml.engine.drift): statistics of the model's input, "
        "its projected embedding, its size, mode and channels, and what of them the model never "
        "saw (skew). Empty where the model did not run on a station's path.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            # A redelivered task finds its prediction already there instead of adding another.
            models.UniqueConstraint(
                fields=["inspection", "model_version", "role"],
                name="prediction_unique_per_model_role",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_version_id} on {self.inspection_id}: p={self.defect_probability:.3f}"


class ReviewReason(models.TextChoices):
    EVERY_ITEM = "every_item", "Level reviews every item"
    UNSURE = "unsure", "Model unsure"
    AUDIT = "audit", "Audit sample"
    # assist and partial's unsure band: a sample at the audit rate shown without the model, so
    # the agreement evidence of those levels is not anchored by the model's answer
    BLIND = "blind", "Blind sample (model hidden)"
    FAIL_SAFE = "fail_safe", "Fail-safe"


class ReviewState(models.TextChoices):
    OPEN = "open", "Open"
    DECIDED = "decided", "Decided"


class ReviewItem(models.Model):
    """An inspection waiting for, or decided by, a human.

    Routing creates it, so it lives beside Inspection; the review app works the queue.
    An audit item's decision is recorded here and does not change the inspection's decision.
    """

    inspection = models.OneToOneField(
        Inspection, on_delete=models.CASCADE, related_name="review_item"
    )
    reason = models.CharField(max_length=20, choices=ReviewReason.choices)
    shows_model = models.BooleanField(
        default=False, help_text="Whether the inspector sees the model's regions (assist, partial)."
    )
    state = models.CharField(max_length=10, choices=ReviewState.choices, default=ReviewState.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    inspector = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Who decided it (Decision.decided_by says model, human or fail-safe).",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    time_spent_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="From the item showing on screen to the decision."
    )
    model_agrees = models.BooleanField(
        null=True,
        blank=True,
        help_text="Human and model agree (None when the model did not predict).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                name="review_decided_has_decision",
                condition=(Q(state="open") & Q(decision=""))
                | (Q(state="decided") & ~Q(decision="") & Q(decided_at__isnull=False)),
            ),
        ]

    def __str__(self) -> str:
        return f"review of {self.inspection_id} ({self.reason}, {self.state})"


class EscapeSource(models.TextChoices):
    AUDIT = "audit", "Audit found it"
    REPORTED = "reported", "Reported later (customer return, downstream test)"


class Escape(models.Model):
    """A defective item the model accepted: the costliest mistake an inspection line makes.

    One per inspection. Written only by inspection.escapes: when a human audit rejects an item
    the model accepted, or when a supervisor records one found later by its serial.
    """

    inspection = models.OneToOneField(Inspection, on_delete=models.CASCADE, related_name="escape")
    line = models.ForeignKey(Line, on_delete=models.PROTECT, related_name="escapes")
    model_version = models.ForeignKey(
        "ml.ModelVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The model version that accepted the item.",
    )
    source = models.CharField(max_length=10, choices=EscapeSource.choices)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True)
    recorded_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"escape of inspection {self.inspection_id} ({self.source})"
