from django.conf import settings
from django.db import models


class ImageLabel(models.TextChoices):
    OK = "ok", "No defect"
    DEFECTIVE = "defective", "Defective"


class LabelSource(models.TextChoices):
    HUMAN = "human", "Human label"  # no model output to compare with
    CORRECTION = "correction", "Correction"  # changes what the model said
    MODEL_ACCEPTED = "model_accepted", "Model accepted"  # a human kept the model's answer


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["inspection_id", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["inspection", "number"], name="annotation_revision_number_unique"
            )
        ]

    def __str__(self) -> str:
        return f"revision {self.number} of inspection {self.inspection_id}"

    @property
    def is_correction(self) -> bool:
        return self.source == LabelSource.CORRECTION

    @property
    def classes(self) -> list[str]:
        return sorted({box["label"] for box in self.boxes})
