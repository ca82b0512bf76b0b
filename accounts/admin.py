from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts.models import ApiToken
from accounts.tokens import revoke_api_token
from inspection.models import Line
from loupe.common.admin import HistoryInline

User = get_user_model()


class LineMembershipInline(HistoryInline):
    """Shown here, changed on the line's page: membership is a line setting with an audit log."""

    model = Line.members.through
    verbose_name = "line this user works"
    verbose_name_plural = "lines this user works"


admin.site.unregister(User)


@admin.register(User)
class LoupeUserAdmin(UserAdmin):
    inlines = [LineMembershipInline]
    list_display = ["username", "is_active", "is_staff", "role", "line_names"]

    @admin.display(description="role")
    def role(self, user):
        return ", ".join(user.groups.values_list("name", flat=True))

    @admin.display(description="lines")
    def line_names(self, user):
        return ", ".join(user.lines.values_list("name", flat=True))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Every user's API tokens; revoked here, created by their user (or create_api_token), since
    a token is shown only once, to whoever creates it."""

    list_display = [
        "name",
        "user",
        "token_prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    ]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "expires_at"]
    search_fields = ["name", "user__username", "token_prefix"]
    fields = list_display
    readonly_fields = list_display
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoked, not deleted: who had which token stays on record

    @admin.action(description="Revoke (the tokens stop working at once)", permissions=["view"])
    def revoke(self, request, queryset):
        revoked = sum(revoke_api_token(token=token) for token in queryset)
        messages.success(request, f"{revoked} token(s) revoked.")
