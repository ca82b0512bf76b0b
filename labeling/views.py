"""Labeling pages and the JSON call the box editor makes. Rules live in labeling.services;
every lookup goes through inspection.selectors, so another line's inspection is a 404."""

from django import forms
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from inspection.selectors import model_hidden_from_humans, visible_inspections, visible_lines
from labeling import queue_views, services
from labeling.models import ImageLabel, LabelSource, QueueKind
from labeling.selectors import current_revision
from loupe.common.json_views import json_endpoint
from loupe.common.permissions import CAN_LABEL, CAN_VIEW_LABELS

PAGE_SIZE = 50


def _inspection_or_404(request, pk):
    return get_object_or_404(visible_inspections(request.user).select_related("line"), pk=pk)


def _revision_json(revision, *, model_hidden: bool = False) -> dict:
    """model_hidden: leave out what would tell the inspector the model's answer (the source
    says whether they agreed with it)."""
    prediction = None if model_hidden else revision.compared_with
    return {
        "number": revision.number,
        "author": revision.author.username,
        "created_at": revision.created_at.isoformat(),
        "image_label": revision.image_label,
        "boxes": revision.boxes,
        "source": None if model_hidden else revision.source,
        "note": revision.note,
        "compared_with": None
        if prediction is None
        else {
            "prediction_id": prediction.pk,
            "model_version": prediction.model_version.name,
            "defect_probability": prediction.defect_probability,
        },
    }


def _model_is_hidden(inspection) -> bool:
    """The inspection selectors' rule: hidden until the human's decision is final."""
    return model_hidden_from_humans(inspection)


def _box(region: dict) -> dict:
    return {key: region[key] for key in (*services.BOX_KEYS, "label")}


@require_GET
@permission_required(CAN_LABEL, raise_exception=True)
def label_page(request, pk):
    inspection = _inspection_or_404(request, pk)
    # the editor starts from the revision that counts, never from a review label over boxes
    latest = current_revision(inspection)
    model_hidden = _model_is_hidden(inspection)
    prediction = None if model_hidden else services.primary_prediction(inspection)
    editor = {
        "width": inspection.width,
        "height": inspection.height,
        "image_url": reverse("inspection:image", args=[inspection.pk]),
        "save_url": reverse("labeling:annotations", args=[inspection.pk]),
        "classes": inspection.line.defect_classes,
        "model_regions": prediction.regions if prediction else None,
        # the editor starts from the ground truth; what the model said stays out of it
        "latest": None
        if latest is None
        else {"image_label": latest.image_label, "boxes": latest.boxes, "note": latest.note},
    }
    in_queue = (
        queue_views.label_queue_context(request, inspection) if "queue" in request.GET else None
    )
    preannotated = False
    if in_queue:
        editor["queue"] = in_queue["script"]
        entry = in_queue["entry"]
        # a batch image sent to labeling starts from the model's answer (pre-annotations)
        if entry and entry.kind == QueueKind.BATCH and latest is None and prediction is not None:
            editor["latest"] = {
                "image_label": services.model_image_label(prediction),
                "boxes": [_box(region) for region in prediction.regions],
                "note": "",
            }
            preannotated = True
    return render(
        request,
        "labeling/label.html",
        {
            "inspection": inspection,
            "latest": latest,
            "prediction": prediction,
            "model_hidden": model_hidden,
            "editor": editor,
            "in_queue": in_queue,
            "preannotated": preannotated,
        },
    )


@require_http_methods(["GET", "POST"])
@json_endpoint
def annotations(request, pk):
    """GET: the inspection's revisions, oldest first (the last is the ground truth).
    POST {image_label, boxes, note}: save a revision; 201, or 200 when it repeats the latest."""
    if request.method == "GET":
        if not request.user.has_perm(CAN_VIEW_LABELS):
            raise PermissionDenied
        inspection = _inspection_or_404(request, pk)
        revisions = inspection.annotations.select_related(
            "author", "compared_with__model_version"
        ).order_by("number")
        hidden = _model_is_hidden(inspection)
        return {
            "inspection_id": inspection.pk,
            "revisions": [_revision_json(r, model_hidden=hidden) for r in revisions],
        }

    if not request.user.has_perm(CAN_LABEL):
        raise PermissionDenied
    inspection = _inspection_or_404(request, pk)
    body = request.json
    revision, created = services.save_annotation(
        inspection=inspection,
        author=request.user,
        image_label=body.get("image_label", ""),
        boxes=body.get("boxes", []),
        note=body.get("note", ""),
    )
    data = {
        "revision": _revision_json(revision, model_hidden=_model_is_hidden(inspection)),
        "created": created,
    }
    return JsonResponse(data, status=201 if created else 200)


@require_GET
@permission_required(CAN_VIEW_LABELS, raise_exception=True)
def history_page(request, pk):
    inspection = _inspection_or_404(request, pk)
    revisions = list(
        inspection.annotations.select_related("author", "compared_with__model_version").order_by(
            "-number"
        )
    )
    for revision in revisions:
        # percentages, so the overlay follows the image at any displayed size
        revision.overlay = [
            {
                "label": box["label"],
                "left": 100 * box["x0"] / inspection.width,
                "top": 100 * box["y0"] / inspection.height,
                "width": 100 * (box["x1"] - box["x0"]) / inspection.width,
                "height": 100 * (box["y1"] - box["y0"]) / inspection.height,
            }
            for box in revision.boxes
        ]
    return render(
        request,
        "labeling/history.html",
        {
            "inspection": inspection,
            "revisions": revisions,
            "model_hidden": _model_is_hidden(inspection),
        },
    )


class DataFilters(forms.Form):
    line = forms.ModelChoiceField(queryset=None, required=False, empty_label="All lines")
    source = forms.ChoiceField(required=False)
    label_class = forms.ChoiceField(required=False, label="Class")
    image_label = forms.ChoiceField(required=False, label="Image label")
    disagreement = forms.BooleanField(required=False, label="Review and editor disagree")

    def __init__(self, data, *, lines):
        super().__init__(data)
        self.fields["line"].queryset = lines
        self.fields["source"].choices = [("", "All sources"), *LabelSource.choices]
        self.fields["image_label"].choices = [("", "Any"), *ImageLabel.choices]
        classes = sorted({label for line in lines for label in line.defect_classes})
        self.fields["label_class"].choices = [("", "All classes")] + [(c, c) for c in classes]


@require_GET
@permission_required(CAN_VIEW_LABELS, raise_exception=True)
def data_page(request):
    lines = visible_lines(request.user)
    filters = DataFilters(request.GET, lines=lines)
    # A bad filter value shows its error and an unfiltered list, rather than a guess.
    chosen = filters.cleaned_data if filters.is_valid() else {}
    revisions = services.labeled_inspections(
        lines=lines,
        line=chosen.get("line"),
        source=chosen.get("source", ""),
        label_class=chosen.get("label_class", ""),
        image_label=chosen.get("image_label", ""),
        disagreement=chosen.get("disagreement", False),
    )
    page = Paginator(revisions, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "labeling/data.html",
        {
            "filters": filters,
            "counts": services.label_counts(lines=lines),
            "page": page,
            "query": query.urlencode(),
        },
    )
