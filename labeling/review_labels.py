"""Review decisions become labels: each final human decision of the review queue is an
image-level revision of its inspection (source review; reject is defective, accept is OK).
An audit's verdict is one too: it leaves the model's decision in place (so it has no Decision
row), yet on a partial or full line it is nearly the only human judgement there is.

When: a periodic job (loupe.periodic) labels decisions that have been final for LABEL_GRACE,
and `manage.py label_review_decisions` labels the ones taken before this existed. A decision
is labeled only once its undo window has passed, so an undone decision never had a label and
nothing has to be taken back; a frozen dataset version never holds a label that could vanish.
The grace after `final_at` covers clocks: undo compares `final_at` with the web process's
clock, this job with the worker's.

Never twice: `AnnotationRevision.decision` is unique, and the inspection's row is locked while
the revision is numbered and the decision checked again (the job and the command may run at
the same time).
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from inspection.decisions import undo_window
from inspection.models import (
    DecidedBy,
    Decision,
    Inspection,
    Outcome,
    ReviewItem,
    ReviewReason,
    ReviewState,
)
from labeling import disagreements
from labeling.models import AnnotationRevision, ImageLabel, LabelSource
from labeling.services import primary_prediction

LABEL_GRACE = timedelta(seconds=30)
BATCH = 500

IMAGE_LABEL_OF = {Outcome.ACCEPT: ImageLabel.OK, Outcome.REJECT: ImageLabel.DEFECTIVE}


def unlabeled_final_decisions(*, now=None):
    """Human decisions from the review queue, final for LABEL_GRACE, without their label.

    Imported items are decided by a human too, but their labels came with the archive (they
    have no review item); audits have no decision and are labeled by unlabeled_final_audits."""
    now = now or timezone.now()
    labeled = AnnotationRevision.objects.filter(decision=OuterRef("pk"))
    return (
        Decision.objects.final(now - LABEL_GRACE)
        .filter(decided_by=DecidedBy.HUMAN, inspection__review_item__isnull=False)
        .exclude(Exists(labeled))
    )


def unlabeled_final_audits(*, now=None):
    """Audit verdicts past their undo window (and LABEL_GRACE), without their label."""
    now = now or timezone.now()
    labeled = AnnotationRevision.objects.filter(audit=OuterRef("pk"))
    return ReviewItem.objects.filter(
        reason=ReviewReason.AUDIT,
        state=ReviewState.DECIDED,
        decided_at__lte=now - undo_window() - LABEL_GRACE,
    ).exclude(Exists(labeled))


def _write_label(*, inspection_id: int, inspector_id: int, outcome: str, **verdict):
    """One review label, numbered under the inspection's row lock; None when `verdict` (the
    decision or the audit) is labeled already."""
    inspection = Inspection.objects.select_for_update().get(pk=inspection_id)
    if AnnotationRevision.objects.filter(**verdict).exists():
        return None
    last = inspection.annotations.aggregate(last=Max("number"))["last"] or 0
    revision = AnnotationRevision.objects.create(
        inspection=inspection,
        number=last + 1,
        author_id=inspector_id,
        image_label=IMAGE_LABEL_OF[outcome],
        boxes=[],
        source=LabelSource.REVIEW,
        compared_with=primary_prediction(inspection),
        **verdict,
    )
    disagreements.note_review_label(revision)
    return revision


@transaction.atomic
def label_decision(decision_id: int) -> AnnotationRevision | None:
    """Write the review label of one final decision; None when it has one already."""
    decision = Decision.objects.get(pk=decision_id)
    return _write_label(
        inspection_id=decision.inspection_id,
        inspector_id=decision.inspector_id,
        outcome=decision.outcome,
        decision=decision,
    )


@transaction.atomic
def label_audit(review_item_id: int) -> AnnotationRevision | None:
    """Write the review label of one final audit verdict; None when it has one already."""
    audit = ReviewItem.objects.get(pk=review_item_id)
    return _write_label(
        inspection_id=audit.inspection_id,
        inspector_id=audit.inspector_id,
        outcome=audit.decision,
        audit=audit,
    )


def label_final_decisions(*, now=None, limit: int = BATCH) -> int:
    """Label up to `limit` final decisions and `limit` final audit verdicts that have no label
    yet, oldest first; return how many labels were written. Safe to repeat and to run
    concurrently."""
    pending = (
        unlabeled_final_decisions(now=now)
        .order_by("final_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    audits = (
        unlabeled_final_audits(now=now)
        .order_by("decided_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    written = sum(label_decision(pk) is not None for pk in list(pending))
    return written + sum(label_audit(pk) is not None for pk in list(audits))
