"""Admin for lines and stations, and read-only views of what happened to items.

Every change a form here makes to a line or a station is saved through inspection.services,
which writes the line's audit log; history rows (decisions, predictions, review items,
inspections, rollouts, the audit log itself) are read-only and cannot be deleted.
"""

from django import forms
from django.contrib import admin, messages

from inspection import services
from inspection.models import (
    Decision,
    Inspection,
    Line,
    LineChange,
    Prediction,
    ReviewItem,
    Rollout,
    Station,
)
from loupe.common.admin import HistoryAdmin, HistoryInline
from loupe.common.errors import LoupeError


class StationInline(HistoryInline):
    model = Station
    fields = ["name", "token_prefix", "is_enabled"]
    readonly_fields = fields
    show_change_link = True


def _who(request) -> str:
    return f"{request.user.get_username()} (admin)"


class LineForm(forms.ModelForm):
    """Refuses what inspection.services would refuse, so the page shows it on the field."""

    class Meta:
        model = Line
        fields = ["name", *services.LINE_SETTINGS, "members"]

    def clean(self):
        data = super().clean()
        try:
            services.validate_line_settings(
                {f: data[f] for f in services.LINE_SETTINGS if data.get(f) is not None}
            )
        except LoupeError as error:
            raise forms.ValidationError(error.message) from error
        return data


@admin.register(Line)
class LineAdmin(admin.ModelAdmin):
    form = LineForm
    list_display = [
        "name",
        "automation_level",
        "accept_threshold",
        "reject_threshold",
        "latency_budget_ms",
        "fail_safe_action",
        "active_model",
    ]
    inlines = [StationInline]
    filter_horizontal = ["members"]
    # a model is activated from the registry (ml.services), which keeps its status in step
    readonly_fields = ["active_model"]

    def get_readonly_fields(self, request, obj=None):
        # the name is the line's key in exports and commands; set once
        return [*self.readonly_fields, "name"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        # LineForm.clean ran the services' own checks; what can still fail here is a change
        # made meanwhile by someone else (a concurrent edit), reported without saving anything
        values = {f: form.cleaned_data[f] for f in services.LINE_SETTINGS if f in form.cleaned_data}
        if not change:
            level = values.pop("automation_level")
            created = services.create_line(name=form.cleaned_data["name"], level=level, **values)
            obj.pk = created.pk
            obj.refresh_from_db()
            return
        try:
            services.set_line_settings(
                line=obj, changed_by=_who(request), reason="Django admin", **values
            )
        except LoupeError as error:
            request.line_not_saved = True
            messages.error(request, f"Not saved: {error.message}")
        obj.refresh_from_db()

    def save_related(self, request, form, formsets, change):
        if getattr(request, "line_not_saved", False):
            return
        if "members" in form.cleaned_data:
            services.set_line_members(
                line=form.instance,
                users=list(form.cleaned_data["members"]),
                changed_by=_who(request),
                reason="Django admin",
            )
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)

    def has_delete_permission(self, request, obj=None) -> bool:
        # a line with any history is kept; the rows that point at it PROTECT it anyway
        history = ("inspections", "stations", "changes", "model_versions", "pipeline_runs")
        if obj is not None and any(getattr(obj, name).exists() for name in history):
            return False
        return super().has_delete_permission(request, obj)


@admin.register(LineChange)
class LineChangeAdmin(HistoryAdmin):
    list_display = ["line", "field", "old_value", "new_value", "changed_by", "changed_at"]
    list_filter = ["line", "field"]


@admin.register(Rollout)
class RolloutAdmin(HistoryAdmin):
    """Read-only: rollouts change through `manage.py rollout` (inspection.rollouts)."""

    list_display = ["line", "challenger", "mode", "share", "state", "started_by", "started_at"]
    list_filter = ["line", "mode", "state"]


@admin.register(Station)
class StationAdmin(admin.ModelAdmin):
    """Stations are created by `manage.py create_station`, which shows the token once; here
    they move between lines, are enabled or disabled, and get a new token (an action)."""

    list_display = ["name", "line", "token_prefix", "is_enabled", "created_at"]
    list_filter = ["line", "is_enabled"]
    fields = ["name", "line", "is_enabled", "token_prefix"]
    readonly_fields = ["name", "token_prefix"]
    actions = ["rotate_tokens"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change):
        station = Station.objects.get(pk=obj.pk)
        try:
            if form.cleaned_data["line"] != station.line:
                services.move_station(
                    station=station, line=form.cleaned_data["line"], changed_by=_who(request)
                )
            services.set_station_enabled(
                station=station, enabled=form.cleaned_data["is_enabled"], changed_by=_who(request)
            )
        except LoupeError as error:
            messages.error(request, f"Not saved: {error.message}")

    @admin.action(description="Issue a new token (the old one stops working at once)")
    def rotate_tokens(self, request, queryset):
        for station in queryset:
            token = services.rotate_station_token(station=station, changed_by=_who(request))
            messages.warning(request, f"New token of {station} (shown only now): {token}")


class PredictionInline(HistoryInline):
    model = Prediction
    readonly_fields = [
        "model_version",
        "role",
        "defect_probability",
        "regions",
        "latency_ms",
        "is_late",
    ]


@admin.register(Inspection)
class InspectionAdmin(HistoryAdmin):
    list_display = ["id", "external_id", "station", "status", "automation_level", "received_at"]
    list_filter = ["line", "status", "automation_level", "fail_safe_reason"]
    search_fields = ["external_id", "image_sha256"]
    inlines = [PredictionInline]


@admin.register(Decision)
class DecisionAdmin(HistoryAdmin):
    list_display = [
        "inspection",
        "outcome",
        "decided_by",
        "inspector",
        "model_version",
        "decided_at",
        "final_at",
    ]
    list_filter = ["outcome", "decided_by"]


@admin.register(Prediction)
class PredictionAdmin(HistoryAdmin):
    list_display = [
        "inspection",
        "model_version",
        "role",
        "defect_probability",
        "latency_ms",
        "is_late",
    ]
    list_filter = ["role", "is_late", "model_version"]


@admin.register(ReviewItem)
class ReviewItemAdmin(HistoryAdmin):
    list_display = [
        "inspection",
        "reason",
        "state",
        "assigned_to",
        "decision",
        "model_agrees",
        "decided_at",
    ]
    list_filter = ["reason", "state", "model_agrees"]
