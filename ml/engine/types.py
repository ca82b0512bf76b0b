"""Plain value types shared by every part of the engine and by its callers."""

from __future__ import annotations

from dataclasses import dataclass


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
    def area(self) -> float:
        return max(0.0, self.x1 - self.x0) * max(0.0, self.y1 - self.y0)

    def iou(self, other: Region) -> float:
        ix = min(self.x1, other.x1) - max(self.x0, other.x0)
        iy = min(self.y1, other.y1) - max(self.y0, other.y0)
        inter = max(0.0, ix) * max(0.0, iy)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

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
