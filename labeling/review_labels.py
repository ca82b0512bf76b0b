"""Review decisions become labels: each final human decision of the review queue is an
image-level revision of its inspection (source review; reject is defective, accept is OK).

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

from inspection.models import DecidedBy, Decision, Inspection, Outcome
from labeling import disagreements
from labeling.models import AnnotationRevision, ImageLabel, LabelSource
from labeling.services import primary_prediction

LABEL_GRACE = timedelta(seconds=30)
BATCH = 500

IMAGE_LABEL_OF = {Outcome.ACCEPT: ImageLabel.OK, Outcome.REJECT: ImageLabel.DEFECTIVE}


def unlabeled_final_decisions(*, now=None):
    """Human decisions from the review queue, final for LABEL_GRACE, without their label.

    Imported items are decided by a human too, but their labels came with the archive (they
    have no review item); audit outcomes stay on the review item and are not decisions."""
    now = now or timezone.now()
    labeled = AnnotationRevision.objects.filter(decision=OuterRef("pk"))
    return (
        Decision.objects.final(now - LABEL_GRACE)
        .filter(decided_by=DecidedBy.HUMAN, inspection__review_item__isnull=False)
        .exclude(Exists(labeled))
    )


@transaction.atomic
def label_decision(decision_id: int) -> AnnotationRevision | None:
    """Write the review label of one final decision; None when it has one already."""
    decision = Decision.objects.get(pk=decision_id)
    inspection = Inspection.objects.select_for_update().get(pk=decision.inspection_id)
    if AnnotationRevision.objects.filter(decision=decision).exists():
        return None
    last = inspection.annotations.aggregate(last=Max("number"))["last"] or 0
    revision = AnnotationRevision.objects.create(
        inspection=inspection,
        number=last + 1,
        author_id=decision.inspector_id,
        image_label=IMAGE_LABEL_OF[decision.outcome],
        boxes=[],
        source=LabelSource.REVIEW,
        compared_with=primary_prediction(inspection),
        decision=decision,
    )
    disagreements.note_review_label(revision)
    return revision


def label_final_decisions(*, now=None, limit: int = BATCH) -> int:
    """Label up to `limit` final decisions that have no label yet, oldest first; return how
    many labels were written. Safe to repeat and to run concurrently."""
    pending = (
        unlabeled_final_decisions(now=now)
        .order_by("final_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    return sum(label_decision(pk) is not None for pk in list(pending))
