from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    ACTIVE = "active", "Active"
    RETIRED = "retired", "Retired"


class ModelVersion(models.Model):
    """A trained artifact with its lineage and its figures on its dataset's test split.

    Which version a line serves is Line.active_model; `status` follows it (ml.services moves
    both together): candidate until promoted, active while it serves its line, retired after.
    """

    name = models.CharField(max_length=100, unique=True)
    status = models.CharField(
        max_length=10, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE
    )
    line = models.ForeignKey(
        "inspection.Line",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="model_versions",
        help_text="The line it was trained for.",
    )
    artifact_path = models.CharField(max_length=500, help_text="Relative to LOUPE_MODEL_DIR.")
    artifact_sha256 = models.CharField(max_length=64, unique=True)
    architecture = models.CharField(max_length=100)
    classes = models.JSONField(default=list)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Figures on its dataset version's test split."
    )
    evaluation = models.JSONField(
        default=dict,
        blank=True,
        help_text="Against the model active when it was trained, on the test split and on the "
        "corrections since, and the gate's judgement.",
    )
    train_seconds = models.FloatField(null=True, blank=True)
    training_data = models.CharField(max_length=500, blank=True)
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="model_versions",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="The version whose weights training started from.",
    )
    code_version = models.CharField(max_length=100, blank=True, help_text="Git commit.")
    environment = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def artifact_file(self) -> Path:
        return Path(settings.LOUPE_MODEL_DIR) / self.artifact_path


class MlopsLevel(models.TextChoices):
    MANUAL = "manual", "Manual: runs start by hand, a supervisor promotes"
    ASSISTED = "assisted", "Assisted: runs start by policy, a supervisor steps a rollout on"
    AUTOMATIC = "automatic", "Automatic: runs start by policy, the rollout gate steps it on"


class RetrainingPolicy(models.Model):
    """How a line retrains: who starts runs, who promotes, and the gate's rules. (How its items
    are routed is the routing policy: the level and thresholds on inspection.Line.)"""

    line = models.OneToOneField(
        "inspection.Line", on_delete=models.CASCADE, related_name="retraining_policy"
    )
    mlops_level = models.CharField(
        max_length=10, choices=MlopsLevel.choices, default=MlopsLevel.MANUAL
    )
    retrain_every_corrections = models.PositiveIntegerField(
        default=200, help_text="At assisted and automatic: start a run after this many."
    )
    gate_margin = models.FloatField(
        default=0.01,
        help_text="F1 at the reject threshold the candidate must gain on both evaluation sets.",
    )
    max_class_recall_drop = models.FloatField(
        default=0.05, help_text="The most any class's recall may fall."
    )
    memory_budget_mb = models.PositiveIntegerField(
        default=2048, help_text="Peak memory of a process that loads and runs the model."
    )
    run_config = models.JSONField(
        default=dict, blank=True, help_text="Overrides of ml.pipeline.DEFAULT_RUN_CONFIG."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "retraining policies"
        constraints = [
            models.CheckConstraint(
                name="policy_gate_ranges",
                condition=Q(gate_margin__gte=0)
                & Q(gate_margin__lte=1)
                & Q(max_class_recall_drop__gte=0)
                & Q(max_class_recall_drop__lte=1),
            ),
            models.CheckConstraint(
                name="policy_every_positive", condition=Q(retrain_every_corrections__gt=0)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.line}: {self.mlops_level}"


class PipelineRunState(models.TextChoices):
    """Where a retraining run is (exports and imports have their own: ExportImportState)."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class RunTrigger(models.TextChoices):
    MANUAL = "manual", "Started by hand"
    POLICY = "policy", "Started by the line's policy"


class PipelineRun(models.Model):
    """One retraining of a line: a chain of steps from a dataset version to a candidate."""

    # PROTECT: a line that retrained has history, and is not deleted
    line = models.ForeignKey(
        "inspection.Line", on_delete=models.PROTECT, related_name="pipeline_runs"
    )
    state = models.CharField(
        max_length=10, choices=PipelineRunState.choices, default=PipelineRunState.PENDING
    )
    trigger = models.CharField(max_length=10, choices=RunTrigger.choices)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    config = models.JSONField(default=dict)
    baseline = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The line's active model when the run started: what the candidate must beat.",
    )
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pipeline_runs",
    )
    candidate = models.OneToOneField(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pipeline_run",
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # one run at a time per line: a second policy trigger finds this one instead
            models.UniqueConstraint(
                fields=["line"],
                condition=Q(state__in=["pending", "running"]),
                name="pipeline_one_unfinished_run_per_line",
            )
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.line} ({self.state})"


class StepState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class PipelineStep(models.Model):
    run = models.ForeignKey(PipelineRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=30)
    position = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=10, choices=StepState.choices, default=StepState.PENDING)
    progress = models.FloatField(default=0.0)
    log = models.TextField(blank=True)
    artifacts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Its last log write.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "name"], name="pipeline_step_unique_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} of run {self.run_id} ({self.state})"

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        from django.utils import timezone

        end = self.finished_at or timezone.now()
        return (end - self.started_at).total_seconds()


class QueueMeasurement(models.Model):
    """One run of `manage.py measure_labeling_queue`: how many labeled items each order of the
    same pool (the labeling queue's, random, arrival) needs before a retrained model finds a
    new defect type. On synthetic lines, so it belongs to no line."""

    params = models.JSONField(default=dict, help_text="Settings and the queue's strategy.")
    result = models.JSONField(default=dict, help_text="What the command printed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"queue measurement {self.pk} of {self.created_at:%Y-%m-%d %H:%M}"
