from django.contrib import admin

from datasets.models import DatasetExport, DatasetImport, DatasetVersion
from loupe.common.admin import HistoryAdmin


class ReadOnlyAdmin(admin.ModelAdmin):
    """Exports and imports are records of runs: admin shows them and may delete them, never
    edits them (an export's zip is removed by remove_expired_exports)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DatasetVersion)
class DatasetVersionAdmin(HistoryAdmin):
    """A frozen version is what model versions were trained on: never edited or deleted."""

    list_display = ["name", "version_hash", "item_count", "created_by", "created_at"]
    search_fields = ["name", "version_hash"]


@admin.register(DatasetExport)
class DatasetExportAdmin(ReadOnlyAdmin):
    list_display = ["version", "format", "state", "done", "total", "size_bytes", "created_at"]
    list_filter = ["format", "state"]


@admin.register(DatasetImport)
class DatasetImportAdmin(ReadOnlyAdmin):
    list_display = ["archive_name", "line", "format", "state", "created_count", "created_at"]
    list_filter = ["format", "state"]
