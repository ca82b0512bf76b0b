"""The review queue page and the JSON calls it makes. Rules live in review.services."""

from django.conf import settings
from django.contrib.auth.decorators import permission_required
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from inspection.models import PredictionRole, ReviewState
from inspection.selectors import visible_lines, visible_review_items
from loupe.common.errors import InvalidInput
from loupe.common.json_views import json_endpoint
from loupe.common.permissions import CAN_REVIEW
from review import services


def _item_json(item) -> dict:
    inspection = item.inspection
    data = {
        "id": item.pk,
        "inspection_id": inspection.pk,
        "external_id": inspection.external_id,
        "line": inspection.line.name,
        "level": inspection.automation_level,
        "reason": item.get_reason_display(),
        "width": inspection.width,
        "height": inspection.height,
        "image_url": reverse("inspection:image", args=[inspection.pk]),
        "detail_url": reverse("inspection:detail", args=[inspection.pk]),
        "label_url": reverse("labeling:label", args=[inspection.pk]),
        "received_at": inspection.received_at.isoformat(),
        "model": None,
    }
    # Regions only where the level shows them: in shadow (and audits) the human must not be
    # anchored by the model's answer, or the agreement figure would mean nothing.
    if item.shows_model:
        prediction = (
            inspection.predictions.filter(role=PredictionRole.PRIMARY)
            .select_related("model_version")
            .first()
        )
        if prediction is not None:
            data["model"] = {
                "defect_probability": prediction.defect_probability,
                "regions": prediction.regions,
                "version": prediction.model_version.name,
            }
    return data


def _queue_size(user) -> int:
    return visible_review_items(user).filter(state=ReviewState.OPEN).count()


def _item_or_404(request, pk):
    return get_object_or_404(
        visible_review_items(request.user).select_related("inspection__line"), pk=pk
    )


@permission_required(CAN_REVIEW, raise_exception=True)
def queue_page(request):
    return render(
        request,
        "review/queue.html",
        {
            "lines": visible_lines(request.user),
            "open_count": _queue_size(request.user),
            "undo_window_s": settings.LOUPE_UNDO_WINDOW_S,
            "keep_claim_every_s": max(5, settings.LOUPE_REVIEW_CLAIM_S // 3),
        },
    )


@require_POST
@json_endpoint
@permission_required(CAN_REVIEW, raise_exception=True)
def claim(request):
    exclude = request.json.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(pk, int) for pk in exclude):
        raise InvalidInput("exclude must be a list of review item ids", field="exclude")
    item = services.claim_next_item(
        user=request.user, items=visible_review_items(request.user), exclude=exclude
    )
    return {
        "item": _item_json(item) if item else None,
        "open_count": _queue_size(request.user),
    }


@require_POST
@json_endpoint
@permission_required(CAN_REVIEW, raise_exception=True)
def decide(request, pk):
    item = _item_or_404(request, pk)
    time_spent_ms = request.json.get("time_spent_ms")
    if time_spent_ms is not None and not isinstance(time_spent_ms, int):
        raise InvalidInput("time_spent_ms must be an integer", field="time_spent_ms")
    item = services.decide_review_item(
        item=item,
        inspector=request.user,
        outcome=request.json.get("decision", ""),
        time_spent_ms=time_spent_ms,
    )
    return {
        "id": item.pk,
        "decision": item.decision,
        # never model_agrees: seen inside the undo window, a disagreement could be taken back
        "undo_window_s": settings.LOUPE_UNDO_WINDOW_S,
        "open_count": _queue_size(request.user),
    }


@require_POST
@json_endpoint
@permission_required(CAN_REVIEW, raise_exception=True)
def undo(request, pk):
    item = services.undo_decision(item=_item_or_404(request, pk), user=request.user)
    return {"item": _item_json(item), "open_count": _queue_size(request.user)}


@require_POST
@json_endpoint
@permission_required(CAN_REVIEW, raise_exception=True)
def keep(request, pk):
    return {"kept": services.keep_claim(item=_item_or_404(request, pk), user=request.user)}


@require_POST
@json_endpoint
@permission_required(CAN_REVIEW, raise_exception=True)
def release(request, pk):
    services.release_claim(item=_item_or_404(request, pk), user=request.user)
    return {"released": True}
