"""Where the labeling queue's flagged items come from: each source is a query of items that
need a labeler, and syncing puts the ones not yet worked on the queue (labeling.queue).

An item is worked when a revision is saved in the editor after the event that flagged it, or
when an entry of the same kind was closed (done or dismissed) after it: a new event (a later
disagreement, a later box-less label) flags it again, the same event never does. Each sync
takes at most SYNC_LIMIT items per source, newest first, so a line with a long history fills
its queue over a few runs instead of in one long transaction. labeling.queue adds the rows.
"""

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from inspection.decisions import undo_window
from inspection.escapes import final_escapes
from inspection.models import Escape, Line, ReviewItem, ReviewState
from labeling.models import (
    PRIORITY,
    AnnotationRevision,
    ImageLabel,
    LabelDisagreement,
    LabelSource,
    QueueEntry,
    QueueKind,
    QueueState,
)
from labeling.selectors import latest_revisions, open_disagreements

SYNC_LIMIT = 500
# (inspection id, line id, kind, score, details): what labeling.queue.add_entries takes
Row = tuple[int, int, str, float, dict]


def _editor_revision_after(when) -> Exists:
    return Exists(
        AnnotationRevision.objects.filter(
            inspection=OuterRef("inspection"), created_at__gt=when
        ).exclude(source=LabelSource.REVIEW)
    )


def _entry_closed_or_made_after(kind: str, when) -> Exists:
    return Exists(
        QueueEntry.objects.filter(inspection=OuterRef("inspection"), kind=kind)
        .annotate(settled=Coalesce("done_at", "created_at"))
        .filter(settled__gte=when)
    )


def _open_entry(kind: str) -> Exists:
    """An item open on the queue at this kind or a more urgent one (a less urgent entry is
    moved up to this kind by add_entries)."""
    return Exists(
        QueueEntry.objects.filter(
            inspection=OuterRef("inspection"), state="open", priority__gte=PRIORITY[kind]
        )
    )


def escape_rows(line: Line) -> list[Row]:
    """Audit escapes and reported ones: a defect the model accepted is the most urgent
    example to box. Each escape is queued once."""
    escapes = (
        final_escapes()
        .filter(line=line)
        .exclude(_editor_revision_after(OuterRef("recorded_at")))
        .exclude(_open_entry(QueueKind.ESCAPE))
        .exclude(_entry_closed_or_made_after(QueueKind.ESCAPE, OuterRef("recorded_at")))
        .order_by("-recorded_at")[:SYNC_LIMIT]
    )
    rows = [
        (
            escape.inspection_id,
            line.pk,
            QueueKind.ESCAPE,
            0.0,
            {
                "why": f"escape ({escape.get_source_display().lower()})",
                "escape_source": escape.source,
                "recorded_at": escape.recorded_at.isoformat(),
            },
        )
        for escape in escapes
    ]
    return rows


def label_disagreement_rows(line: Line) -> list[Row]:
    """Items whose review decision and editor label disagree (open marks)."""
    marks = (
        open_disagreements(Line.objects.filter(pk=line.pk))
        .exclude(_open_entry(QueueKind.DISAGREEMENT))
        .exclude(_entry_closed_or_made_after(QueueKind.DISAGREEMENT, OuterRef("created_at")))
        .select_related("review_revision", "editor_revision")
        .order_by("-created_at")[:SYNC_LIMIT]
    )
    rows = [
        (
            mark.inspection_id,
            line.pk,
            QueueKind.DISAGREEMENT,
            0.0,
            {
                "why": (
                    f"review said {mark.review_revision.image_label}, "
                    f"the editor {mark.editor_revision.image_label}"
                ),
                "between": "review_and_editor",
            },
        )
        for mark in marks
    ]
    return rows


def model_disagreement_rows(line: Line) -> list[Row]:
    """Items a human decided against the model in the review queue (shadow, assist, audits),
    not labeled in the editor since."""
    items = (
        ReviewItem.objects.filter(
            inspection__line=line,
            state=ReviewState.DECIDED,
            model_agrees=False,
            # final: queued earlier, "the model said otherwise" would show inside the undo window
            decided_at__lte=timezone.now() - undo_window(),
        )
        .exclude(_editor_revision_after(OuterRef("decided_at")))
        .exclude(_open_entry(QueueKind.DISAGREEMENT))
        .exclude(_entry_closed_or_made_after(QueueKind.DISAGREEMENT, OuterRef("decided_at")))
        .order_by("-decided_at")[:SYNC_LIMIT]
    )
    rows = [
        (
            item.inspection_id,
            line.pk,
            QueueKind.DISAGREEMENT,
            0.0,
            {
                "why": f"a human chose {item.decision}, the model did not",
                "between": "review_and_model",
            },
        )
        for item in items
    ]
    return rows


def boxless_rows(line: Line) -> list[Row]:
    """Items whose labels that count say defective without a box: review rejects, editor
    saves with D and no box, image-level imports. Boxes make them train the defect map too."""
    revisions = (
        latest_revisions(Line.objects.filter(pk=line.pk))
        .filter(Q(image_label=ImageLabel.DEFECTIVE) & Q(boxes=[]))
        .exclude(_open_entry(QueueKind.BOXLESS))
        .exclude(_entry_closed_or_made_after(QueueKind.BOXLESS, OuterRef("created_at")))
        .order_by("-created_at")[:SYNC_LIMIT]
    )
    rows = [
        (
            revision.inspection_id,
            line.pk,
            QueueKind.BOXLESS,
            0.0,
            {"why": f"defective without boxes ({revision.get_source_display().lower()})"},
        )
        for revision in revisions
    ]
    return rows


def gone_entries(line: Line) -> QuerySet[QueueEntry]:
    """Open entries whose reason is gone: an audit escape withdrawn with its undone reject, a
    disagreement whose review decision was undone (or whose mark was settled). Refreshing
    dismisses them; claimed ones too, since there is nothing left to label for that reason."""
    entries = QueueEntry.objects.filter(line=line, state=QueueState.OPEN)
    escaped = Escape.objects.filter(inspection=OuterRef("inspection"))
    marked = LabelDisagreement.objects.filter(
        inspection=OuterRef("inspection"), settled_at__isnull=True
    )
    against_model = ReviewItem.objects.filter(
        inspection=OuterRef("inspection"), state=ReviewState.DECIDED, model_agrees=False
    )
    return entries.alias(
        escaped=Exists(escaped), marked=Exists(marked), against_model=Exists(against_model)
    ).filter(
        Q(kind=QueueKind.ESCAPE, escaped=False)
        | Q(kind=QueueKind.DISAGREEMENT, marked=False, against_model=False)
    )


# each source of flagged items, by the kind it queues them as, most urgent first
SOURCES = (
    (QueueKind.ESCAPE, escape_rows),
    (QueueKind.DISAGREEMENT, label_disagreement_rows),
    (QueueKind.DISAGREEMENT, model_disagreement_rows),
    (QueueKind.BOXLESS, boxless_rows),
)
