"""Which lines, inspections and review items a user may see.

Every browser page and user-facing API starts from these querysets, so an object of
another line is simply not found (404), never shown by mistake.
"""

from django.db.models import QuerySet
from django.utils import timezone

from inspection import decisions
from inspection.models import Inspection, Line, ReviewItem, ReviewState
from loupe.common.permissions import is_admin


def visible_lines(user) -> QuerySet[Line]:
    if not user.is_authenticated:
        return Line.objects.none()
    if is_admin(user):
        return Line.objects.all()
    return Line.objects.filter(members=user)


def visible_inspections(user) -> QuerySet[Inspection]:
    return Inspection.objects.filter(line__in=visible_lines(user))


def visible_review_items(user) -> QuerySet[ReviewItem]:
    return ReviewItem.objects.filter(inspection__line__in=visible_lines(user))


def inspection_with_answer(inspection_id: int) -> Inspection:
    """An inspection with everything its station answer shows, in one query and a prefetch."""
    return (
        Inspection.objects.select_related("decision", "model_version", "line", "review_item")
        .prefetch_related("predictions__model_version")
        .get(pk=inspection_id)
    )


def review_is_final(review_item: ReviewItem | None, now=None) -> bool:
    """The human's review decision can no longer be undone. Whether they agreed with the model
    shows only from then: seen inside the undo window, a disagreement could be taken back."""
    return (
        review_item is not None
        and review_item.state == ReviewState.DECIDED
        and review_item.decided_at + decisions.undo_window() <= (now or timezone.now())
    )


def model_hidden_from_humans(inspection: Inspection, now=None) -> bool:
    """While a shadow, audit or blind item waits for its human, or their decision can still be
    undone, no page shows the model's answer: a peek would make the agreement figure
    meaningless. Assist and partial's unsure items show the model by design."""
    review_item = getattr(inspection, "review_item", None)
    return (
        review_item is not None
        and not review_item.shows_model
        and not review_is_final(review_item, now)
    )
