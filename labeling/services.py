"""Annotation revisions: saving an inspector's labels, and the labeled-data figures.

The latest revision of an inspection is its ground truth. A revision that changes what the
model said is a correction: the training examples the data loop wants most.
"""

import math
from collections import defaultdict
from dataclasses import dataclass, field

from django.db import connection, transaction
from django.db.models import BooleanField, Exists, OuterRef, QuerySet
from django.db.models.expressions import RawSQL

from inspection.models import Inspection, Line, Prediction, PredictionRole
from labeling import disagreements, queue, signals
from labeling.models import AnnotationRevision, ImageLabel, LabelDisagreement, LabelSource
from labeling.selectors import latest_revisions
from loupe.common.errors import InvalidInput
from ml.engine.types import box_iou

MAX_BOXES = 200
MAX_NOTE_LENGTH = 2000
# Same threshold the detection metrics use: a box this close to the model's is the model's box.
MATCH_IOU = 0.5
# The model outputs regions only for an image it judged defective (ml.engine.inference).
MODEL_DEFECTIVE_PROBABILITY = 0.5
BOX_KEYS = ("x0", "y0", "x1", "y1")


# Saving ----------------------------------------------------------------------------------


def validate_boxes(boxes, *, inspection: Inspection) -> list[dict]:
    """Check boxes from a client and return them clean: {x0, y0, x1, y1, label}, coordinates
    in image pixels rounded to 0.01. Raises InvalidInput naming the first bad box."""
    if not isinstance(boxes, list):
        raise InvalidInput("boxes must be a list", field="boxes")
    if len(boxes) > MAX_BOXES:
        raise InvalidInput(f"at most {MAX_BOXES} boxes per image", field="boxes")
    classes = inspection.line.defect_classes
    clean = []
    for index, box in enumerate(boxes, start=1):
        where = f"box {index}"
        if not isinstance(box, dict):
            raise InvalidInput(f"{where} must be an object", field="boxes")
        values = {}
        for key in BOX_KEYS:
            value = box.get(key)
            # bool is an int in Python; true/false as a coordinate is a client bug
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput(f"{where}: {key} must be a number", field="boxes")
            if not math.isfinite(value):
                raise InvalidInput(f"{where}: {key} must be a finite number", field="boxes")
            values[key] = round(float(value), 2)
        if not (0 <= values["x0"] < values["x1"] <= inspection.width):
            raise InvalidInput(
                f"{where}: needs 0 <= x0 < x1 <= {inspection.width} (the image width)",
                field="boxes",
            )
        if not (0 <= values["y0"] < values["y1"] <= inspection.height):
            raise InvalidInput(
                f"{where}: needs 0 <= y0 < y1 <= {inspection.height} (the image height)",
                field="boxes",
            )
        label = box.get("label")
        if label not in classes:
            raise InvalidInput(
                f"{where}: class {label!r} is not one of the line's classes", field="boxes"
            )
        clean.append({**values, "label": label})
    return clean


def primary_prediction(inspection: Inspection) -> Prediction | None:
    """The model output a human label is compared with: the primary prediction of the model
    version that routed the item, else the first primary one."""
    predictions = inspection.predictions.filter(role=PredictionRole.PRIMARY).select_related(
        "model_version"
    )
    routed = predictions.filter(model_version_id=inspection.model_version_id).first()
    return routed or predictions.order_by("created_at").first()


def model_image_label(prediction: Prediction) -> str:
    if prediction.regions or prediction.defect_probability >= MODEL_DEFECTIVE_PROBABILITY:
        return ImageLabel.DEFECTIVE
    return ImageLabel.OK


def iou(a: dict, b: dict) -> float:
    """IoU of two boxes as the pages and the API carry them ({x0, y0, x1, y1, ...})."""
    return box_iou(tuple(a[key] for key in BOX_KEYS), tuple(b[key] for key in BOX_KEYS))


def boxes_match(boxes: list[dict], regions: list[dict]) -> bool:
    """Whether boxes and regions pair up one-to-one, each pair of the same class with
    IoU >= MATCH_IOU. Pairs are taken best IoU first (greedy, as detection metrics do)."""
    if len(boxes) != len(regions):
        return False
    pairs = sorted(
        (
            (iou(box, region), i, j)
            for i, box in enumerate(boxes)
            for j, region in enumerate(regions)
            if box["label"] == region["label"]
        ),
        reverse=True,
    )
    used_boxes, used_regions = set(), set()
    for overlap, i, j in pairs:
        if overlap < MATCH_IOU:
            break
        if i not in used_boxes and j not in used_regions:
            used_boxes.add(i)
            used_regions.add(j)
    return len(used_boxes) == len(boxes)


def label_source(image_label: str, boxes: list[dict], prediction: Prediction | None) -> str:
    """human without a model output; model_accepted when the label and boxes keep what the
    model said; correction otherwise."""
    if prediction is None:
        return LabelSource.HUMAN
    if image_label == model_image_label(prediction) and boxes_match(boxes, prediction.regions):
        return LabelSource.MODEL_ACCEPTED
    return LabelSource.CORRECTION


@transaction.atomic
def save_annotation(
    *, inspection: Inspection, author, image_label: str, boxes, note: str = ""
) -> tuple[AnnotationRevision, bool]:
    """Save the author's labels of an inspection as its next revision; returns (revision,
    created).

    Raises InvalidInput (nothing stored) on a bad image label, box or note. Safe to repeat:
    when the latest revision is the same author's editor revision (not a review label) with
    the same labels and note (a retried or double-clicked save), it is returned with
    created=False and nothing is added. Concurrent saves of one inspection are numbered one
    after the other: the inspection row is locked while the number is chosen, and
    (inspection, number) is unique. A save settles or opens the item's review/editor
    disagreement mark (labeling.disagreements) and finishes its labeling-queue entry.
    """
    if image_label not in ImageLabel.values:
        raise InvalidInput(
            f"image label must be one of {', '.join(ImageLabel.values)}", field="image_label"
        )
    if not isinstance(note, str) or len(note) > MAX_NOTE_LENGTH:
        raise InvalidInput(f"note must be text of at most {MAX_NOTE_LENGTH} characters")
    inspection = Inspection.objects.select_for_update().select_related("line").get(pk=inspection.pk)
    boxes = validate_boxes(boxes, inspection=inspection)
    if image_label == ImageLabel.OK and boxes:
        raise InvalidInput(
            "an image labeled OK cannot have defect boxes: delete them or label it defective",
            field="image_label",
        )

    latest = inspection.annotations.order_by("-number").first()
    if (
        latest is not None
        and latest.source != LabelSource.REVIEW
        and latest.author_id == author.pk
        and latest.image_label == image_label
        and latest.boxes == boxes
        and latest.note == note
    ):
        # the labeler confirmed labels they saved before: the item is labeled all the same
        queue.note_editor_save(latest, author=author)
        return latest, False

    prediction = primary_prediction(inspection)
    revision = AnnotationRevision.objects.create(
        inspection=inspection,
        number=(latest.number if latest else 0) + 1,
        author=author,
        image_label=image_label,
        boxes=boxes,
        source=label_source(image_label, boxes, prediction),
        compared_with=prediction,
        note=note,
    )
    disagreements.note_editor_revision(revision)
    queue.note_editor_save(revision, author=author)
    if revision.source == LabelSource.CORRECTION:
        # the line's retraining policy counts corrections; ml listens (ml.receivers)
        line_id = inspection.line_id
        transaction.on_commit(
            lambda: signals.correction_saved.send(sender=AnnotationRevision, line_id=line_id)
        )
    return revision, True


def record_imported_labels(*, author, labels) -> None:
    """The first revision of imported inspections: (inspection, image_label, boxes, note)
    each, source human (the importing user vouches for them). Bulk, in the caller's
    transaction; the archive's boxes were checked by the importer."""
    AnnotationRevision.objects.bulk_create(
        AnnotationRevision(
            inspection=inspection,
            number=1,
            author=author,
            image_label=image_label,
            boxes=boxes,
            source=LabelSource.HUMAN,
            note=note[:MAX_NOTE_LENGTH],
        )
        for inspection, image_label, boxes, note in labels
    )


# Reading: the data team's page ------------------------------------------------------------


def _with_box_of_class(revisions: QuerySet[AnnotationRevision], label: str):
    if connection.vendor == "postgresql":
        return revisions.filter(boxes__contains=[{"label": label}])
    # SQLite (the embedded demo) has no JSON containment: look inside the array instead.
    return revisions.annotate(
        has_class=RawSQL(
            "EXISTS (SELECT 1 FROM json_each(labeling_annotationrevision.boxes)"
            " WHERE json_extract(json_each.value, '$.label') = %s)",
            [label],
            output_field=BooleanField(),
        )
    ).filter(has_class=True)


def labeled_inspections(
    *,
    lines: QuerySet[Line],
    line: Line | None = None,
    source: str = "",
    label_class: str = "",
    image_label: str = "",
    disagreement: bool = False,
) -> QuerySet[AnnotationRevision]:
    """The revisions that count of the labeled inspections of `lines`, newest first, narrowed
    by the filters that are set (disagreement: only items with an open review/editor
    disagreement). Each carries `disagrees`: whether its item has an open one."""
    open_marks = LabelDisagreement.objects.filter(
        inspection=OuterRef("inspection"), settled_at__isnull=True
    )
    revisions = latest_revisions(lines).annotate(disagrees=Exists(open_marks))
    if disagreement:
        revisions = revisions.filter(disagrees=True)
    if line is not None:
        revisions = revisions.filter(inspection__line=line)
    if source:
        revisions = revisions.filter(source=source)
    if image_label:
        revisions = revisions.filter(image_label=image_label)
    if label_class:
        revisions = _with_box_of_class(revisions, label_class)
    return revisions.select_related("inspection__line", "author", "decision").order_by(
        "-created_at", "-pk"
    )


@dataclass
class SourceCounts:
    label: str | None  # a defect class; None for labeled items without boxes
    human: int = 0
    correction: int = 0
    model_accepted: int = 0
    review: int = 0

    @property
    def total(self) -> int:
        return self.human + self.correction + self.model_accepted + self.review

    def add(self, source: str) -> None:
        setattr(self, source, getattr(self, source) + 1)


@dataclass
class LineCounts:
    line: Line
    items: SourceCounts  # labeled items, each counted once
    classes: list[SourceCounts] = field(default_factory=list)


def label_counts(*, lines: QuerySet[Line]) -> list[LineCounts]:
    """Labeled items per line, defect class and source, from each item's latest revision.

    An item counts once per class it has a box of, and once in its line's total. Every class of
    the line gets a row, zeros included, so a class without examples stands out.
    """
    by_line: dict[int, dict[str | None, SourceCounts]] = defaultdict(dict)
    items: dict[int, SourceCounts] = defaultdict(lambda: SourceCounts(label=None))
    rows = latest_revisions(lines).values_list("inspection__line_id", "source", "boxes")
    for line_id, source, boxes in rows.iterator():
        items[line_id].add(source)
        for label in {box["label"] for box in boxes} or {None}:
            by_line[line_id].setdefault(label, SourceCounts(label=label)).add(source)
    result = []
    for line in lines.order_by("name"):
        counts = by_line.get(line.pk, {})
        # the line's classes in its own order, then classes it no longer has, then no boxes
        labels = list(line.defect_classes)
        labels += sorted(label for label in counts if label is not None and label not in labels)
        labels.append(None)
        result.append(
            LineCounts(
                line=line,
                items=items.get(line.pk, SourceCounts(label=None)),
                classes=[counts.get(label, SourceCounts(label=label)) for label in labels],
            )
        )
    return result
