"""Admin building blocks shared by the apps."""

from django.contrib import admin


class ReadOnlyMixin:
    """Rows that are history (decisions, predictions, audit entries, revisions, versions):
    admin shows them and never adds, edits or deletes them. Their own services write them."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class HistoryAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class HistoryInline(ReadOnlyMixin, admin.TabularInline):
    extra = 0
    can_delete = False
