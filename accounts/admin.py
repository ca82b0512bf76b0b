from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

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
