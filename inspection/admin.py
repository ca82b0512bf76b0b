from django.contrib import admin

from inspection.models import (
    Decision,
    Inspection,
    Line,
    LineChange,
    Prediction,
    ReviewItem,
    Station,
)


class StationInline(admin.TabularInline):
    model = Station
    fields = ["name", "token_prefix", "is_enabled"]
    readonly_fields = ["token_prefix"]
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Line)
class LineAdmin(admin.ModelAdmin):
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


@admin.register(LineChange)
class LineChangeAdmin(admin.ModelAdmin):
    list_display = ["line", "field", "old_value", "new_value", "changed_by", "changed_at"]
    list_filter = ["line", "field"]
    readonly_fields = [f.name for f in LineChange._meta.fields]


@admin.register(Station)
class StationAdmin(admin.ModelAdmin):
    list_display = ["name", "line", "token_prefix", "is_enabled", "created_at"]
    list_filter = ["line", "is_enabled"]
    # Tokens are issued by `manage.py create_station`, which shows the token once.
    readonly_fields = ["token_hash", "token_prefix"]


class PredictionInline(admin.TabularInline):
    model = Prediction
    extra = 0
    can_delete = False
    readonly_fields = [
        "model_version",
        "role",
        "defect_probability",
        "regions",
        "latency_ms",
        "is_late",
    ]


@admin.register(Inspection)
class InspectionAdmin(admin.ModelAdmin):
    list_display = ["id", "external_id", "station", "status", "automation_level", "received_at"]
    list_filter = ["line", "status", "automation_level", "fail_safe_reason"]
    search_fields = ["external_id", "image_sha256"]
    inlines = [PredictionInline]
    readonly_fields = [f.name for f in Inspection._meta.fields]


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    list_display = [
        "inspection",
        "outcome",
        "decided_by",
        "inspector",
        "model_version",
        "decided_at",
    ]
    list_filter = ["outcome", "decided_by"]
    readonly_fields = [f.name for f in Decision._meta.fields]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = [
        "inspection",
        "model_version",
        "role",
        "defect_probability",
        "latency_ms",
        "is_late",
    ]
    list_filter = ["role", "is_late", "model_version"]
    readonly_fields = [f.name for f in Prediction._meta.fields]


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
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
