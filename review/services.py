"""The review queue: claiming items, human decisions, undo."""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inspection import decisions, escapes, routing
from inspection.errors import DecisionFinal
from inspection.models import (
    Outcome,
    PredictionRole,
    ReviewItem,
    ReviewReason,
    ReviewState,
)
from loupe.common.errors import InvalidInput
from review.errors import AlreadyDecided, ClaimedByOther, UndoNotAllowed
from review.models import ReviewAction, ReviewEvent


def _model_agrees(item: ReviewItem, outcome: str) -> bool | None:
    inspection = item.inspection
    prediction = (
        inspection.predictions.filter(role=PredictionRole.PRIMARY).order_by("created_at").first()
    )
    if prediction is None:
        return None
    return (
        routing.model_outcome(prediction.defect_probability, inspection.reject_threshold) == outcome
    )


def _claim_cutoff():
    return timezone.now() - timedelta(seconds=settings.LOUPE_REVIEW_CLAIM_S)


def _claimable_by(user) -> Q:
    """Open, and free: never claimed, claim lapsed, or already this user's."""
    return Q(state=ReviewState.OPEN) & (
        Q(assigned_to__isnull=True) | Q(claimed_at__lt=_claim_cutoff()) | Q(assigned_to=user)
    )


def claim_next_item(*, user, items: QuerySet[ReviewItem], exclude=()) -> ReviewItem | None:
    """Claim the oldest open item of `items` (the user's visible queue) for `user`.

    Items the user already holds come back first (a reloaded page gets its items back);
    `exclude` skips the ones the page already shows. Two inspectors claiming at once never get
    the same item: the claim is a conditional UPDATE that only one of them wins, and the loser
    moves on to the next candidate.
    """
    queue = items.exclude(pk__in=list(exclude))
    mine = queue.filter(state=ReviewState.OPEN, assigned_to=user, claimed_at__gte=_claim_cutoff())
    for candidate_ids in (
        mine.order_by("claimed_at", "pk").values_list("pk", flat=True)[:1],
        queue.filter(_claimable_by(user))
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)[:20],
    ):
        for pk in candidate_ids:
            won = ReviewItem.objects.filter(Q(pk=pk) & _claimable_by(user)).update(
                assigned_to=user, claimed_at=timezone.now()
            )
            if won:
                return ReviewItem.objects.select_related("inspection", "inspection__line").get(
                    pk=pk
                )
    return None


def keep_claim(*, item: ReviewItem, user) -> bool:
    """The inspector is still looking at the item: push its claim's expiry forward."""
    return bool(
        ReviewItem.objects.filter(pk=item.pk, state=ReviewState.OPEN)
        .filter(_claimable_by(user))
        .update(assigned_to=user, claimed_at=timezone.now())
    )


def release_claim(*, item: ReviewItem, user) -> None:
    """Give an undecided item back to the queue (the inspector left the page)."""
    ReviewItem.objects.filter(pk=item.pk, state=ReviewState.OPEN, assigned_to=user).update(
        assigned_to=None, claimed_at=None
    )


@transaction.atomic
def decide_review_item(
    *,
    item: ReviewItem,
    inspector: AbstractBaseUser,
    outcome: str,
    time_spent_ms: int | None = None,
) -> ReviewItem:
    """Record an inspector's decision.

    For a review item it becomes the inspection's final decision; for an audit item it is
    recorded beside the model's decision and changes nothing else, except that an audit's
    reject of an item the model accepted marks an escape (inspection.escapes). The
    model-vs-human agreement is stored either way, and shown to nobody before the decision is
    final: the inspector could otherwise undo a disagreement. Raises AlreadyDecided if someone
    else decided first, and ClaimedByOther while another inspector holds the item; the same
    inspector repeating the same decision (a retried request) changes nothing.
    """
    if outcome not in Outcome.values:
        raise InvalidInput(f"decision must be one of {', '.join(Outcome.values)}", field="decision")
    if time_spent_ms is not None and not 0 <= time_spent_ms <= 24 * 3600 * 1000:
        raise InvalidInput("time_spent_ms must be between 0 and a day", field="time_spent_ms")
    item = ReviewItem.objects.select_related("inspection").get(pk=item.pk)
    now = timezone.now()
    won = ReviewItem.objects.filter(Q(pk=item.pk) & _claimable_by(inspector)).update(
        state=ReviewState.DECIDED,
        decision=outcome,
        inspector=inspector,
        decided_at=now,
        time_spent_ms=time_spent_ms,
        model_agrees=_model_agrees(item, outcome),
    )
    if won != 1:
        item.refresh_from_db()
        if item.state == ReviewState.OPEN:
            raise ClaimedByOther(f"review item {item.pk} is being reviewed by someone else")
        if item.inspector_id == inspector.pk and item.decision == outcome:
            return item
        raise AlreadyDecided(f"review item {item.pk} was already decided")
    if item.reason != ReviewReason.AUDIT:
        decisions.record_human_decision(
            inspection_id=item.inspection_id, outcome=outcome, inspector=inspector, decided_at=now
        )
    ReviewEvent.objects.create(
        item=item,
        user=inspector,
        action=ReviewAction.DECIDED,
        outcome=outcome,
        time_spent_ms=time_spent_ms,
    )
    item.refresh_from_db()
    escapes.record_audit_escape(review_item=item, inspector=inspector)
    return item


@transaction.atomic
def undo_decision(*, item: ReviewItem, user) -> ReviewItem:
    """Take back the user's own decision within the undo window; the item returns to them.

    The undone decision stays in the review history (ReviewEvent); an undone audit reject
    takes its escape back. Raises UndoNotAllowed when
    the window has passed or the decision is someone else's.
    """
    now = timezone.now()
    reopened = ReviewItem.objects.filter(
        pk=item.pk,
        state=ReviewState.DECIDED,
        inspector=user,
        decided_at__gte=now - decisions.undo_window(),
    ).update(
        state=ReviewState.OPEN,
        decision="",
        inspector=None,
        decided_at=None,
        time_spent_ms=None,
        model_agrees=None,
        assigned_to=user,
        claimed_at=now,
    )
    if reopened != 1:
        raise UndoNotAllowed(
            f"only your own decision of the last {settings.LOUPE_UNDO_WINDOW_S} s can be undone"
        )
    item = ReviewItem.objects.select_related("inspection").get(pk=item.pk)
    if item.reason != ReviewReason.AUDIT:
        try:
            decisions.undo_human_decision(inspection_id=item.inspection_id, inspector=user, now=now)
        except DecisionFinal as error:
            raise UndoNotAllowed(error.message) from error
    else:
        escapes.withdraw_audit_escape(inspection_id=item.inspection_id)
    ReviewEvent.objects.create(item=item, user=user, action=ReviewAction.UNDONE)
    return item
