"""Human decisions on review items."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from inspection.errors import InvalidInput
from inspection.models import (
    DecidedBy,
    Decision,
    Inspection,
    InspectionStatus,
    Outcome,
    PredictionRole,
    ReviewItem,
    ReviewReason,
    ReviewState,
)
from review.errors import AlreadyDecided


def model_outcome(defect_probability: float, reject_threshold: float) -> str:
    """What the model would have decided alone: the full-automation rule."""
    return Outcome.REJECT if defect_probability >= reject_threshold else Outcome.ACCEPT


def _model_agrees(item: ReviewItem, outcome: str) -> bool | None:
    inspection = item.inspection
    prediction = (
        inspection.predictions.filter(role=PredictionRole.PRIMARY).order_by("created_at").first()
    )
    if prediction is None:
        return None
    return model_outcome(prediction.defect_probability, inspection.reject_threshold) == outcome


@transaction.atomic
def decide_review_item(
    *, item: ReviewItem, inspector: AbstractBaseUser, outcome: str
) -> ReviewItem:
    """Record an inspector's decision.

    For a review item it becomes the inspection's final decision; for an audit item it is
    recorded beside the model's decision and changes nothing else. The model-vs-human
    agreement is stored either way. Raises AlreadyDecided if someone else decided first; the
    same inspector repeating the same decision (a retried request) changes nothing.
    """
    if outcome not in Outcome.values:
        raise InvalidInput(f"decision must be one of {', '.join(Outcome.values)}", field="decision")
    item = ReviewItem.objects.select_related("inspection").get(pk=item.pk)
    now = timezone.now()
    won = ReviewItem.objects.filter(pk=item.pk, state=ReviewState.OPEN).update(
        state=ReviewState.DECIDED,
        decision=outcome,
        decided_by=inspector,
        decided_at=now,
        model_agrees=_model_agrees(item, outcome),
    )
    if won != 1:
        item.refresh_from_db()
        if item.decided_by_id == inspector.pk and item.decision == outcome:
            return item
        raise AlreadyDecided(f"review item {item.pk} was already decided")
    if item.reason != ReviewReason.AUDIT:
        Decision.objects.create(
            inspection_id=item.inspection_id,
            outcome=outcome,
            decided_by=DecidedBy.HUMAN,
            inspector=inspector,
            decided_at=now,
        )
        Inspection.objects.filter(pk=item.inspection_id, status=InspectionStatus.IN_REVIEW).update(
            status=InspectionStatus.DECIDED
        )
    item.refresh_from_db()
    return item
