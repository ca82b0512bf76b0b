from django.conf import settings
from django.db import models
from django.db.models import Q


class ImageLabel(models.TextChoices):
    OK = "ok", "No defect"
    DEFECTIVE = "defective", "Defective"


class LabelSource(models.TextChoices):
    HUMAN = "human", "Human label"  # no model output to compare with
    CORRECTION = "correction", "Correction"  # changes what the model said
    MODEL_ACCEPTED = "model_accepted", "Model accepted"  # a human kept the model's answer
    # an inspector's final accept/reject in the review queue: image-level, never boxes; it
    # counts only while the item has no revision from the editor (labeling.selectors)
    REVIEW = "review", "Review decision"


class AnnotationRevision(models.Model):
    """One save of an inspection's labels. Never edited: the latest revision is the ground
    truth, earlier ones stay readable as its history.

    boxes: [{"x0", "y0", "x1", "y1", "label"}] in the image's pixels.
    """

    inspection = models.ForeignKey(
        "inspection.Inspection", on_delete=models.CASCADE, related_name="annotations"
    )
    number = models.PositiveIntegerField()
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    image_label = models.CharField(max_length=10, choices=ImageLabel.choices)
    boxes = models.JSONField(default=list)
    source = models.CharField(max_length=20, choices=LabelSource.choices)
    compared_with = models.ForeignKey(
        "inspection.Prediction",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The model output this revision was compared with to find corrections.",
    )
    note = models.TextField(blank=True)
    decision = models.OneToOneField(
        "inspection.Decision",
        null=True,
        blank=True,
        # a labeled decision is final and cannot be undone; deleting its inspection deletes both
        on_delete=models.RESTRICT,
        related_name="+",
        help_text="The review decision this revision was made from (source review only). "
        "Unique: a decision is labeled once.",
    )
    audit = models.OneToOneField(
        "inspection.ReviewItem",
        null=True,
        blank=True,
        # a labeled audit is final and cannot be undone; deleting its inspection deletes both
        on_delete=models.RESTRICT,
        related_name="+",
        help_text="The audit verdict this revision was made from (source review only): an "
        "audit leaves the model's decision in place, so it has no decision of its own. Unique.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["inspection_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["inspection", "number"], name="annotation_revision_number_unique"
            ),
            # a review label comes from exactly one human verdict: a decision or an audit
            models.CheckConstraint(
                name="annotation_revision_review_has_decision",
                condition=(
                    Q(source="review")
                    & Q(boxes=[])
                    & (
                        (Q(decision__isnull=False) & Q(audit__isnull=True))
                        | (Q(decision__isnull=True) & Q(audit__isnull=False))
                    )
                )
                | (~Q(source="review") & Q(decision__isnull=True) & Q(audit__isnull=True)),
            ),
        ]

    def __str__(self) -> str:
        return f"revision {self.number} of inspection {self.inspection_id}"

    @property
    def is_review(self) -> bool:
        return self.source == LabelSource.REVIEW

    @property
    def is_correction(self) -> bool:
        return self.source == LabelSource.CORRECTION

    @property
    def classes(self) -> list[str]:
        return sorted({box["label"] for box in self.boxes})


class LabelDisagreement(models.Model):
    """An item whose review decision and editor label disagree (one says defective, the other
    OK): worth a human's second look. Open until the next revision saved in the editor
    settles it; the labeling queue reads the open ones. Written only by labeling.disagreements.
    """

    inspection = models.ForeignKey(
        "inspection.Inspection", on_delete=models.CASCADE, related_name="label_disagreements"
    )
    review_revision = models.ForeignKey(
        AnnotationRevision, on_delete=models.CASCADE, related_name="+"
    )
    editor_revision = models.ForeignKey(
        AnnotationRevision, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    settled_by = models.ForeignKey(
        AnnotationRevision, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["inspection"],
                condition=Q(settled_at__isnull=True),
                name="label_disagreement_one_open_per_item",
            )
        ]

    def __str__(self) -> str:
        state = "open" if self.settled_at is None else "settled"
        return f"disagreement on inspection {self.inspection_id} ({state})"


class QueueKind(models.TextChoices):
    """Why an item is on the labeling queue; the order of PRIORITY is the order of work."""

    ESCAPE = "escape", "Audit escape"
    DISAGREEMENT = "disagreement", "Model and human disagree"
    BOXLESS = "boxless", "Defective without boxes"
    BATCH = "batch", "Batch prediction"
    UNCERTAIN = "uncertain", "Model uncertain"
    NOVEL = "novel", "Unlike the labeled data"


# Escapes first (a defect the model let through), then what humans already flagged, then what
# the data team sent; active learning's picks come last, among themselves by their score.
PRIORITY = {
    QueueKind.ESCAPE: 400,
    QueueKind.DISAGREEMENT: 300,
    QueueKind.BOXLESS: 200,
    QueueKind.BATCH: 100,
    QueueKind.UNCERTAIN: 0,
    QueueKind.NOVEL: 0,
}
ACTIVE_LEARNING_KINDS = (QueueKind.UNCERTAIN, QueueKind.NOVEL)


class QueueState(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"  # a revision was saved in the editor
    DISMISSED = "dismissed", "Dismissed"


class QueueEntry(models.Model):
    """An item worth a labeler's boxes, on its line's labeling queue. Written only by
    labeling.queue; one open entry per inspection (a partial unique index).

    done_at is when it stopped being open (saved or dismissed): a source event after it (a
    new disagreement, a new box-less label) puts the item on the queue again.
    """

    line = models.ForeignKey(
        "inspection.Line", on_delete=models.CASCADE, related_name="queue_entries"
    )
    inspection = models.ForeignKey(
        "inspection.Inspection", on_delete=models.CASCADE, related_name="queue_entries"
    )
    kind = models.CharField(max_length=20, choices=QueueKind.choices)
    priority = models.IntegerField()
    score = models.FloatField(default=0.0, help_text="Active learning's score; 0 otherwise.")
    details = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=QueueState.choices, default=QueueState.OPEN)
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-priority", "-score", "created_at", "pk"]
        verbose_name_plural = "queue entries"
        constraints = [
            models.UniqueConstraint(
                fields=["inspection"],
                condition=Q(state="open"),
                name="queue_entry_one_open_per_item",
            ),
            models.CheckConstraint(
                name="queue_entry_closed_has_time",
                condition=Q(state="open", done_at__isnull=True)
                | (~Q(state="open") & Q(done_at__isnull=False)),
            ),
        ]
        indexes = [
            # the claim's scan: a line's open entries in the order they are worked
            models.Index(
                "line",
                models.F("priority").desc(),
                models.F("score").desc(),
                "created_at",
                name="queue_entry_open_order",
                condition=Q(state="open"),
            ),
            models.Index(fields=["done_by", "done_at"], name="queue_entry_done_by"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} entry for inspection {self.inspection_id} ({self.state})"


class QueueRefresh(models.Model):
    """The last refresh of a line's queue: when, what it changed, and the active-learning
    strategy it ranked by (shown on the queue page). Written only by labeling.queue."""

    line = models.OneToOneField(
        "inspection.Line", on_delete=models.CASCADE, related_name="queue_refresh"
    )
    refreshed_at = models.DateTimeField()
    result = models.JSONField(default=dict)
    strategy = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"queue of {self.line_id} refreshed at {self.refreshed_at}"
