"""Browser pages about one inspection. Every lookup goes through inspection.selectors, so an
inspection of a line the user does not work is a 404."""

from django.contrib.auth.decorators import permission_required
from django.http import FileResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from inspection import storage
from inspection.models import DecidedBy, Escape, PredictionRole
from inspection.selectors import model_hidden_from_humans, review_is_final, visible_inspections
from inspection.thumbnails import thumbnail_path
from loupe.common.permissions import CAN_VIEW_INSPECTIONS


def _inspection_or_404(request, pk):
    return get_object_or_404(visible_inspections(request.user).select_related("line"), pk=pk)


@require_GET
@permission_required(CAN_VIEW_INSPECTIONS, raise_exception=True)
@cache_control(private=True, max_age=3600)
def inspection_image(request, pk):
    inspection = _inspection_or_404(request, pk)
    content_type = "image/png" if inspection.image_format == "PNG" else "image/jpeg"
    return FileResponse(
        open(storage.image_path(inspection.image.name), "rb"), content_type=content_type
    )


@require_GET
@permission_required(CAN_VIEW_INSPECTIONS, raise_exception=True)
@cache_control(private=True, max_age=3600)
def inspection_thumb(request, pk):
    inspection = _inspection_or_404(request, pk)
    path = thumbnail_path(storage.image_path(inspection.image.name), inspection.image_sha256)
    return FileResponse(open(path, "rb"), content_type="image/jpeg")


@require_GET
@permission_required(CAN_VIEW_INSPECTIONS, raise_exception=True)
def inspection_detail(request, pk):
    inspection = _inspection_or_404(request, pk)
    review_item = getattr(inspection, "review_item", None)
    decision = getattr(inspection, "decision", None)
    predictions = inspection.predictions.select_related("model_version").order_by("created_at")
    events = review_item.events.select_related("user") if review_item else []
    review_final = review_is_final(review_item)
    model_hidden = model_hidden_from_humans(inspection)
    escape = None if model_hidden else Escape.objects.filter(inspection=inspection).first()
    if model_hidden:
        predictions = predictions.none()
        if decision is not None and decision.decided_by == DecidedBy.MODEL:
            decision = None  # an open audit item: the model's decision is its answer
    primary = next((p for p in predictions if p.role == PredictionRole.PRIMARY), None)
    scale = 512 / max(inspection.width, inspection.height)  # small images shown larger
    return render(
        request,
        "inspection/detail.html",
        {
            "inspection": inspection,
            "predictions": predictions,
            "primary": primary,
            "review_item": review_item,
            "review_final": review_final,
            "escape": escape,
            "events": events,
            "decision": decision,
            "revisions": inspection.annotations.select_related("author").order_by("-number"),
            "shown_width": round(inspection.width * scale),
            "shown_height": round(inspection.height * scale),
            "overlay": _overlay(primary.regions if primary else [], scale),
        },
    )


def _overlay(regions, scale):
    """The model's boxes in the shown image's pixels."""
    return [
        {
            "left": round(r["x0"] * scale),
            "top": round(r["y0"] * scale),
            "width": round((r["x1"] - r["x0"]) * scale),
            "height": round((r["y1"] - r["y0"]) * scale),
            "label": r["label"],
            "score": r["score"],
        }
        for r in regions
    ]
