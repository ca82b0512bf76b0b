from django.conf import settings
from django.db import models


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VAL = "val", "Validation"
    TEST = "test", "Test"


class DatasetVersion(models.Model):
    """A frozen, immutable selection of labeled inspections.

    version_hash is the hash of exactly which annotation revisions (and image contents) it
    holds, so freezing the same selection of the same revisions twice gives the same version.
    Never edited: later labels go into a later version.
    """

    name = models.CharField(max_length=100, unique=True)
    version_hash = models.CharField(max_length=64, unique=True)
    filters = models.JSONField(default=dict, help_text="The selection it was frozen from.")
    classes = models.JSONField(default=list)
    counts = models.JSONField(
        default=dict, help_text="{split: {'images', 'defect_free', 'boxes': {class: n}}}"
    )
    item_count = models.PositiveIntegerField()
    lines = models.ManyToManyField(
        "inspection.Line",
        related_name="+",
        help_text="The lines its items come from: only their members see the version.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class DatasetItem(models.Model):
    """One image of a version: its lineage (inspection, revision) and a copy of its labels,
    so a version reads the same whatever happens to later revisions."""

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="items")
    inspection = models.ForeignKey(
        "inspection.Inspection", on_delete=models.PROTECT, related_name="+"
    )
    revision = models.ForeignKey(
        "labeling.AnnotationRevision", on_delete=models.PROTECT, related_name="+"
    )
    split = models.CharField(max_length=5, choices=Split.choices)
    image = models.CharField(max_length=300, help_text="Storage name of the image.")
    image_sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    image_label = models.CharField(max_length=10)
    boxes = models.JSONField(default=list)
    source = models.CharField(max_length=20)

    class Meta:
        ordering = ["version_id", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "inspection"], name="dataset_item_once_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.inspection_id} in {self.version_id} ({self.split})"


class ExportImportState(models.TextChoices):
    """Where an export or an import run is (a pipeline run has its own: PipelineRunState)."""

    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportFormat(models.TextChoices):
    COCO = "coco", "COCO detection"
    YOLO = "yolo", "YOLO detection"
    IMAGEFOLDER = "imagefolder", "ImageFolder (classification)"
    CSV = "csv", "CSV manifest with images"


class DatasetExport(models.Model):
    """One zip of a version in one format, written by a worker under MEDIA_ROOT/exports/.

    (Not "ExportJob": Celery owns the words task and job.)
    """

    version = models.ForeignKey(DatasetVersion, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=20, choices=ExportFormat.choices)
    state = models.CharField(
        max_length=10, choices=ExportImportState.choices, default=ExportImportState.QUEUED
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=300, blank=True, help_text="Relative to MEDIA_ROOT.")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Also the heartbeat of a run.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(
        null=True, blank=True, help_text="When its zip was removed (LOUPE_EXPORT_KEEP_DAYS)."
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.version} as {self.format} ({self.state})"

    @property
    def is_downloadable(self) -> bool:
        return self.state == ExportImportState.DONE and self.removed_at is None


class ImportFormat(models.TextChoices):
    COCO = "coco", "COCO detection (annotations.json + images)"
    IMAGEFOLDER = "imagefolder", "ImageFolder (<class>/<image>)"


class DatasetImport(models.Model):
    """An uploaded COCO or ImageFolder zip turned, all or nothing, into labeled inspections."""

    # PROTECT: the import is the record of where the line's labeled items came from
    line = models.ForeignKey("inspection.Line", on_delete=models.PROTECT, related_name="+")
    format = models.CharField(max_length=20, choices=ImportFormat.choices)
    state = models.CharField(
        max_length=10, choices=ExportImportState.choices, default=ExportImportState.QUEUED
    )
    archive_name = models.CharField(max_length=255, help_text="The uploaded file's name.")
    archive_file = models.CharField(
        max_length=300, blank=True, help_text="Relative to MEDIA_ROOT; removed after the run."
    )
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    problems = models.JSONField(
        default=list, help_text="[{file, reason}]: any of them refuses the whole archive."
    )
    problem_count = models.PositiveIntegerField(default=0)
    skipped = models.JSONField(
        default=list, help_text="[{file, reason}]: files left out without refusing the archive."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import of {self.archive_name} into {self.line} ({self.state})"


class BatchPrediction(models.Model):
    """A zip of unlabeled images that a line's active model predicts, apart from live work.

    Its images are predicted on their own queue (datasets.batch); its results are read as CSV
    or JSON, and any of its images can be sent to the line's labeling queue with the model's
    boxes as pre-annotations. (Not "BatchJob": Celery owns the words task and job.)
    """

    # PROTECT: the batch records which model said what about which images of the line
    line = models.ForeignKey("inspection.Line", on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(
        "ml.ModelVersion",
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The line's active model when the batch was started: it predicts every image.",
    )
    state = models.CharField(
        max_length=10, choices=ExportImportState.choices, default=ExportImportState.QUEUED
    )
    source_name = models.CharField(max_length=255, help_text="The uploaded zip's or folder's name.")
    archive_file = models.CharField(
        max_length=300, blank=True, help_text="Relative to MEDIA_ROOT; removed after the run."
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0, help_text="Images finished, failed ones too.")
    failed_count = models.PositiveIntegerField(default=0, help_text="Images that were refused.")
    sent_count = models.PositiveIntegerField(
        default=0, help_text="Images sent to the labeling queue so far."
    )
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, help_text="Also the heartbeat of a run.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"batch {self.source_name} on {self.line} ({self.state})"


class BatchImage(models.Model):
    """One file of a batch: the model's output for it, or why it could not be predicted."""

    batch = models.ForeignKey(BatchPrediction, on_delete=models.CASCADE, related_name="images")
    position = models.PositiveIntegerField(help_text="Order in the archive.")
    name = models.CharField(max_length=500, help_text="The file's name in the archive.")
    sha256 = models.CharField(max_length=64, blank=True)
    image = models.CharField(max_length=300, blank=True, help_text="Storage name of the image.")
    image_format = models.CharField(max_length=10, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    defect_probability = models.FloatField(null=True, blank=True)
    regions = models.JSONField(default=list, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    inspection = models.ForeignKey(
        "inspection.Inspection",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Its offline inspection, once sent to the labeling queue.",
    )

    class Meta:
        ordering = ["batch_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "position"], name="batch_image_position"),
        ]
        indexes = [models.Index(fields=["batch", "defect_probability"], name="batch_image_p")]

    def __str__(self) -> str:
        return f"{self.name} in batch {self.batch_id}"

    @property
    def is_pending(self) -> bool:
        return self.defect_probability is None and not self.error
