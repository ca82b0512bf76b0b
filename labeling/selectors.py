"""Reads of annotation revisions."""

from django.db.models import Exists, OuterRef, Q, QuerySet

from labeling.models import AnnotationRevision, LabelDisagreement, LabelSource


def latest_revisions(lines: QuerySet | None = None) -> QuerySet[AnnotationRevision]:
    """The ground truth of every labeled inspection (of these lines, when given): the one
    revision of each inspection that counts. Every reader of "the current labels" starts here.

    Precedence, decided here only: a revision saved in the editor (or imported) outranks a
    review decision's label whatever their order, so an accept/reject never hides boxes an
    inspector drew; among revisions of the same kind the latest counts. A review label counts
    only for an item nobody labeled in the editor.
    """
    same_item = AnnotationRevision.objects.filter(inspection=OuterRef("inspection"))
    editor = same_item.exclude(source=LabelSource.REVIEW)
    newer_editor = editor.filter(number__gt=OuterRef("number"))
    newer_review = same_item.filter(source=LabelSource.REVIEW, number__gt=OuterRef("number"))
    counts = (~Q(source=LabelSource.REVIEW) & ~Exists(newer_editor)) | (
        Q(source=LabelSource.REVIEW) & ~Exists(editor) & ~Exists(newer_review)
    )
    revisions = AnnotationRevision.objects.filter(counts)
    if lines is not None:
        revisions = revisions.filter(inspection__line__in=lines)
    return revisions


def current_revision(inspection) -> AnnotationRevision | None:
    """The revision of one inspection that counts (latest_revisions' rule), or None."""
    return (
        latest_revisions()
        .filter(inspection=inspection)
        .select_related("author", "decision")
        .first()
    )


def open_disagreements(lines: QuerySet | None = None) -> QuerySet[LabelDisagreement]:
    """Items whose review decision and editor label disagree, not yet settled: what the
    labeling queue offers for a second look."""
    marks = LabelDisagreement.objects.filter(settled_at__isnull=True)
    if lines is not None:
        marks = marks.filter(inspection__line__in=lines)
    return marks
