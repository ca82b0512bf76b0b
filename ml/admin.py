from django.contrib import admin

from ml.models import LinePolicy, ModelVersion, PipelineRun, PipelineStep


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Read-only: versions change status through promotion, discard and rollback, which keep
    the line's audit log (the registry pages and ml.services)."""

    list_display = ["name", "line", "status", "dataset_version", "code_version", "created_at"]
    list_filter = ["status", "line"]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]


@admin.register(LinePolicy)
class LinePolicyAdmin(admin.ModelAdmin):
    list_display = ["line", "mlops_level", "retrain_every_corrections", "gate_margin"]


class PipelineStepInline(admin.TabularInline):
    model = PipelineStep
    fields = ["name", "state", "attempts", "started_at", "finished_at", "error"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(PipelineRun)
class PipelineRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "line", "state", "trigger", "candidate", "created_at"]
    list_filter = ["state", "line"]
    readonly_fields = [f.name for f in PipelineRun._meta.fields]
    inlines = [PipelineStepInline]
