"""Reads of the registry that apply the user's lines (inspection.selectors): a version or run of
another line is not found."""

from django.db.models import Q, QuerySet

from inspection.selectors import visible_lines
from loupe.common.permissions import is_admin
from ml.models import ModelVersion, PipelineRun


def visible_versions(user) -> QuerySet[ModelVersion]:
    """Versions trained for the user's lines; versions of no line (trained from a folder on
    the command line) only for admins."""
    scope = Q(line__in=visible_lines(user))
    if user.is_authenticated and is_admin(user):
        scope |= Q(line__isnull=True)
    return ModelVersion.objects.filter(scope).select_related("line", "dataset_version", "parent")


def visible_runs(user) -> QuerySet[PipelineRun]:
    return PipelineRun.objects.filter(line__in=visible_lines(user)).select_related(
        "line", "baseline", "candidate", "dataset_version", "started_by"
    )
