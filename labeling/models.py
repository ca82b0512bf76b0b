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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["inspection_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["inspection", "number"], name="annotation_revision_number_unique"
            ),
            models.CheckConstraint(
                name="annotation_revision_review_has_decision",
                condition=(Q(source="review") & Q(decision__isnull=False) & Q(boxes=[]))
                | (~Q(source="review") & Q(decision__isnull=True)),
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
