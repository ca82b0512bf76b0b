from django.contrib import admin

from labeling.models import AnnotationRevision


@admin.register(AnnotationRevision)
class AnnotationRevisionAdmin(admin.ModelAdmin):
    """Revisions are history: readable here, written only by labeling.services.save_annotation
    (which numbers them and decides their source). Never deleted: they are the ground truth
    the dataset versions and models were made from."""

    list_display = ["inspection", "number", "image_label", "source", "author", "created_at"]
    list_filter = ["source", "image_label", "inspection__line"]
    search_fields = ["inspection__external_id", "author__username"]
    list_select_related = ["inspection__station__line", "author"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
