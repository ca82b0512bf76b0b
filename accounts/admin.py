from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from inspection.models import Line

User = get_user_model()


class LineMembershipInline(admin.TabularInline):
    model = Line.members.through
    extra = 1
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
