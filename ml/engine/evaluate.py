"""Metrics of a model at a line's two thresholds, for the registry and the evaluation gate.

A line's model accepts at p <= accept_threshold and rejects at p >= reject_threshold (the
routing rules of the inspection service), so the figures are given at both: at "accept" a
defect counts as caught when the model does not accept it (a human or a reject follows), at
"reject" only when the model rejects it on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from PIL import Image

from .dataset import LabeledImage
from .metrics import auroc, box_hit_rate
from .types import ModelOutput, Region

if TYPE_CHECKING:
    from .inference import DefectModel


def predict_samples(
    model: DefectModel, samples: Sequence[LabeledImage], *, batch_size: int = 64
) -> list[ModelOutput]:
    outputs: list[ModelOutput] = []
    for start in range(0, len(samples), batch_size):
        outputs.extend(model.predict([_open_rgb(s) for s in samples[start : start + batch_size]]))
    return outputs


def mean_box_iou(truth: Sequence[Sequence[Region]], predicted: Sequence[Sequence[Region]]) -> float:
    """Mean over every true box of its best IoU with a predicted box of the same image (0 when
    the model drew none): how well the boxes an inspector sees fit the defects."""
    best = [
        max((p.iou(t) for p in found), default=0.0)
        for boxes, found in zip(truth, predicted, strict=True)
        for t in boxes
    ]
    if not best:
        raise ValueError("mean_box_iou needs at least one true box")
    return sum(best) / len(best)


def figures_at(
    samples: Sequence[LabeledImage],
    outputs: Sequence[ModelOutput],
    flagged: Sequence[bool],
    classes: Sequence[str],
) -> dict:
    labels = [s.is_defective for s in samples]
    tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
    fn = sum(y and not f for f, y in zip(flagged, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    per_class = {}
    for name in classes:
        with_class = [f for f, s in zip(flagged, samples, strict=True) if _has(s, name)]
        # a class without images in this set has no recall: left out, never reported as 0
        if with_class:
            per_class[name] = sum(with_class) / len(with_class)
    return {
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "recall_per_class": per_class,
    }


def evaluate_at_thresholds(
    model: DefectModel,
    samples: Sequence[LabeledImage],
    *,
    accept_threshold: float,
    reject_threshold: float,
    outputs: Sequence[ModelOutput] | None = None,
) -> dict:
    """{count, defective_count, class_counts, auroc, box_iou, box_hit_rate,
    accept: {threshold, precision, recall, f1, recall_per_class}, reject: {...}}.

    auroc, box_iou and box_hit_rate are left out when undefined on these samples (one class
    only, or no true box: defective images labeled without boxes count for the image figures
    only). Pass `outputs` to reuse predictions already made.
    """
    if outputs is None:
        outputs = predict_samples(model, samples)
    labels = [int(s.is_defective) for s in samples]
    scores = [o.defect_probability for o in outputs]
    # a class the model has no output for still has a recall: whether its images get flagged
    present = {box.label for s in samples for box in s.boxes}
    classes = list(model.classes) + sorted(present - set(model.classes))
    class_counts = {name: sum(_has(s, name) for s in samples) for name in classes}
    result: dict = {
        "count": len(samples),
        "defective_count": sum(labels),
        "class_counts": {k: v for k, v in class_counts.items() if v},
    }
    if 0 < sum(labels) < len(labels):
        result["auroc"] = auroc(labels, scores)
    # defective images labeled without boxes count above, but have no box to match
    if any(s.boxes for s in samples):
        truth = [s.boxes for s in samples]
        found = [o.regions for o in outputs]
        result["box_iou"] = mean_box_iou(truth, found)
        result["box_hit_rate"] = box_hit_rate(truth, found)
    result["accept"] = {
        "threshold": accept_threshold,
        **figures_at(samples, outputs, [p > accept_threshold for p in scores], classes),
    }
    result["reject"] = {
        "threshold": reject_threshold,
        **figures_at(samples, outputs, [p >= reject_threshold for p in scores], classes),
    }
    return result


def _has(sample: LabeledImage, label: str) -> bool:
    return any(box.label == label for box in sample.boxes)


def _open_rgb(sample: LabeledImage) -> Image.Image:
    with Image.open(sample.path) as image:
        return image.convert("RGB")
