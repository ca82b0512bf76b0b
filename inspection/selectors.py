"""Which lines, inspections and review items a user may see.

Every browser page and user-facing API starts from these querysets, so an object of
another line is simply not found (404), never shown by mistake.
"""

from django.db.models import QuerySet

from inspection.models import Inspection, Line, ReviewItem
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
