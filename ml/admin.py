from django.contrib import admin

from ml.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "architecture", "artifact_sha256", "train_seconds", "created_at"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
