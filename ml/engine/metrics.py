"""Image-level and localization metrics for a defect model on labelled images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from .dataset import LabeledImage
from .types import Region

if TYPE_CHECKING:
    from .inference import DefectModel


def auroc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U); tied scores count half."""
    y = np.asarray(labels)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape or y.ndim != 1:
        raise ValueError("labels and scores must be flat sequences of the same length")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("AUROC needs at least one positive and one negative label")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # 1-based rank of each distinct score, averaged over its ties
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse][y == 1].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def box_hit_rate(
    truth: Sequence[Sequence[Region]],
    predicted: Sequence[Sequence[Region]],
    *,
    iou_threshold: float = 0.3,
) -> float:
    """Fraction of defective images where some predicted box overlaps some true box enough."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truth entries but {len(predicted)} predictions")
    pairs = [(t, p) for t, p in zip(truth, predicted, strict=True) if len(t) > 0]
    if not pairs:
        raise ValueError("box_hit_rate needs at least one image with a true box")
    hits = sum(any(pb.iou(tb) >= iou_threshold for pb in p for tb in t) for t, p in pairs)
    return hits / len(pairs)


def evaluate(
    model: DefectModel,
    samples: Sequence[LabeledImage],
    *,
    threshold: float = 0.5,
    batch_size: int = 64,
) -> dict[str, float]:
    """Metrics of `model` on `samples`.

    A metric that is undefined on these samples (auroc with one class, box_hit_rate or
    recall_<class> with no such images) is left out rather than reported as NaN.
    """
    outputs = []
    for start in range(0, len(samples), batch_size):
        images = [_open_rgb(s) for s in samples[start : start + batch_size]]
        outputs.extend(model.predict(images))
    labels = [int(s.is_defective) for s in samples]
    flagged = [o.defect_probability >= threshold for o in outputs]
    tp = sum(f and y for f, y in zip(flagged, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flagged, labels, strict=True))
    fn = sum(y and not f for f, y in zip(flagged, labels, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    metrics = {
        "count": float(len(samples)),
        "defective_count": float(sum(labels)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }
    if 0 < sum(labels) < len(labels):
        metrics["auroc"] = auroc(labels, [o.defect_probability for o in outputs])
    # defective images labeled without boxes count above, but have no box to hit
    if any(s.boxes for s in samples):
        metrics["box_hit_rate"] = box_hit_rate(
            [s.boxes for s in samples], [o.regions for o in outputs]
        )
    for name in model.classes:
        with_class = [f for f, s in zip(flagged, samples, strict=True) if _has(s, name)]
        if with_class:
            metrics[f"recall_{name}"] = sum(with_class) / len(with_class)
    return metrics


def _has(sample: LabeledImage, label: str) -> bool:
    return any(box.label == label for box in sample.boxes)


def _open_rgb(sample: LabeledImage) -> Image.Image:
    with Image.open(sample.path) as image:
        return image.convert("RGB")
