"""What of the datasets a user may see: a version only when every line it draws from is
theirs, so another line's labels never leak through a dataset (other lines = 404)."""

from django.db.models import QuerySet

from datasets.models import BatchPrediction, DatasetExport, DatasetImport, DatasetVersion
from inspection.models import Line
from inspection.selectors import visible_lines
from loupe.common.permissions import is_admin


def visible_versions(user) -> QuerySet[DatasetVersion]:
    if not user or not user.is_authenticated:
        return DatasetVersion.objects.none()
    if is_admin(user):
        return DatasetVersion.objects.all()
    hidden = Line.objects.exclude(pk__in=visible_lines(user))
    return DatasetVersion.objects.exclude(lines__in=hidden)


def visible_exports(user) -> QuerySet[DatasetExport]:
    return DatasetExport.objects.filter(version__in=visible_versions(user))


def visible_imports(user) -> QuerySet[DatasetImport]:
    if not user or not user.is_authenticated:
        return DatasetImport.objects.none()
    return DatasetImport.objects.filter(line__in=visible_lines(user))


def visible_batches(user) -> QuerySet[BatchPrediction]:
    if not user or not user.is_authenticated:
        return BatchPrediction.objects.none()
    return BatchPrediction.objects.filter(line__in=visible_lines(user))
