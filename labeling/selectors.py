"""Reads of annotation revisions."""

from django.db.models import Exists, OuterRef, QuerySet

from labeling.models import AnnotationRevision


def latest_revisions(lines: QuerySet | None = None) -> QuerySet[AnnotationRevision]:
    """The ground truth of every labeled inspection (of these lines, when given): each
    inspection's latest revision. Every reader of "the current labels" starts here."""
    newer = AnnotationRevision.objects.filter(
        inspection=OuterRef("inspection"), number__gt=OuterRef("number")
    )
    revisions = AnnotationRevision.objects.filter(~Exists(newer))
    if lines is not None:
        revisions = revisions.filter(inspection__line__in=lines)
    return revisions
