"""Plain value types shared by every part of the engine and by its callers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two boxes given as (x0, y0, x1, y1), x1/y1 the far edges.

    The one IoU of Loupe: 0 for disjoint or touching boxes, and when both are empty; an
    inverted box (x1 < x0) counts as empty.
    """
    ax0, ay0, ax1, ay1 = a
    bx0, by0, bx1, by1 = b
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = _area(ax0, ay0, ax1, ay1) + _area(bx0, by0, bx1, by1) - inter
    return inter / union if union > 0 else 0.0


def _area(x0: float, y0: float, x1: float, y1: float) -> float:
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@dataclass(frozen=True)
class Region:
    """A box in original-image pixel coordinates; x1/y1 are the far edges, not the last pixel."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str
    score: float

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @property
    def area(self) -> float:
        return _area(*self.bounds)

    def iou(self, other: Region) -> float:
        return box_iou(self.bounds, other.bounds)

    def to_dict(self) -> dict:
        return {
            "x0": round(float(self.x0), 2),
            "y0": round(float(self.y0), 2),
            "x1": round(float(self.x1), 2),
            "y1": round(float(self.y1), 2),
            "label": self.label,
            "score": round(float(self.score), 4),
        }


@dataclass(frozen=True)
class ModelOutput:
    defect_probability: float
    regions: tuple[Region, ...]
