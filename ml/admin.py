"""Admin views of the registry: versions and runs are history (read-only); a line's
retraining policy is saved through ml.services.set_retraining_policy, which writes the line's audit
log. A model is activated from the registry pages or `manage.py activate_model`."""

from django.contrib import admin, messages

from loupe.common.admin import HistoryAdmin, HistoryInline
from loupe.common.errors import LoupeError
from ml import services
from ml.models import ModelVersion, PipelineRun, PipelineStep, RetrainingPolicy


@admin.register(ModelVersion)
class ModelVersionAdmin(HistoryAdmin):
    list_display = ["name", "line", "status", "dataset_version", "code_version", "created_at"]
    list_filter = ["status", "line"]


@admin.register(RetrainingPolicy)
class RetrainingPolicyAdmin(admin.ModelAdmin):
    list_display = ["line", "mlops_level", "retrain_every_corrections", "gate_margin"]
    fields = ["line", *services.RETRAINING_POLICY_FIELDS]

    def get_readonly_fields(self, request, obj=None):
        return ["line"] if obj else []

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        values = {field: form.cleaned_data[field] for field in services.RETRAINING_POLICY_FIELDS}
        try:
            policy = services.set_retraining_policy(
                line=form.cleaned_data.get("line") or obj.line,
                changed_by=f"{request.user.get_username()} (admin)",
                reason="Django admin",
                **values,
            )
            obj.pk = policy.pk
        except LoupeError as error:
            messages.error(request, f"Not saved: {error.message}")


class PipelineStepInline(HistoryInline):
    model = PipelineStep
    fields = ["name", "state", "attempts", "started_at", "finished_at", "error"]
    readonly_fields = fields


@admin.register(PipelineRun)
class PipelineRunAdmin(HistoryAdmin):
    list_display = ["pk", "line", "state", "trigger", "candidate", "created_at"]
    list_filter = ["state", "line"]
    inlines = [PipelineStepInline]
