from django.db import models


class ModelVersion(models.Model):
    """A trained artifact. Which lines use it is Line.active_model (one active version per line)."""

    name = models.CharField(max_length=100, unique=True)
    artifact_path = models.CharField(max_length=500, help_text="Relative to LOUPE_MODEL_DIR.")
    artifact_sha256 = models.CharField(max_length=64, unique=True)
    architecture = models.CharField(max_length=100)
    classes = models.JSONField(default=list)
    hyperparameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    train_seconds = models.FloatField(null=True, blank=True)
    training_data = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name
