"""Running a trained network on images and turning its defect map into boxes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from .types import ModelOutput, Region


@dataclass(frozen=True)
class Preprocessing:
    input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def resize(self, image: Image.Image) -> np.ndarray:
        """HxWx3 uint8 at input_size; training decodes through this too, so both sides agree."""
        size = (self.input_size, self.input_size)
        image = image.convert("RGB")
        if image.size != size:
            image = image.resize(size, Image.Resampling.BILINEAR)
        return np.asarray(image, dtype=np.uint8)

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels: ...xCxHxW floats on the 0..1 scale."""
        mean = torch.tensor(self.mean, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=pixels.dtype, device=pixels.device).view(3, 1, 1)
        return (pixels - mean) / std

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(self.resize(image).copy()).permute(2, 0, 1)
        return self.normalize(pixels.float() / 255.0)

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        mean = tuple(float(v) for v in data["mean"])
        std = tuple(float(v) for v in data["std"])
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError("preprocessing needs three means and three positive stds")
        return cls(int(data["input_size"]), mean, std)


class DefectModel:
    """A loaded network plus everything needed to use it; build it with artifact.load_artifact.

    image_threshold: defect_probability from which an image is judged defective and gets
    regions. pixel_threshold: map level that outlines a region (tuned per model in training).
    region_threshold: a region's peak must reach it, unless it is the image's only candidate.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        *,
        classes: tuple[str, ...],
        architecture: str,
        preprocessing: Preprocessing,
        metrics: dict | None = None,
        hyperparameters: dict | None = None,
        device: str = "cpu",
        pixel_threshold: float = 0.5,
        region_threshold: float = 0.5,
        image_threshold: float = 0.5,
    ) -> None:
        self.network = network.to(device).eval()
        self.classes = tuple(classes)
        self.architecture = architecture
        self.preprocessing = preprocessing
        self.metrics = dict(metrics or {})
        self.hyperparameters = dict(hyperparameters or {})
        self.device = device
        self.pixel_threshold = pixel_threshold
        self.region_threshold = region_threshold
        self.image_threshold = image_threshold

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        if not images:
            size = self.preprocessing.input_size
            return torch.empty((0, 3, size, size), device=self.device)
        return torch.stack([self.preprocessing.to_tensor(im) for im in images]).to(self.device)

    def predict(self, images: Sequence[Image.Image]) -> list[ModelOutput]:
        with torch.inference_mode():
            return self.predict_batch(self.preprocess(images), [im.size for im in images])

    def predict_batch(
        self, batch: torch.Tensor, sizes: Sequence[tuple[int, int]]
    ) -> list[ModelOutput]:
        if len(sizes) != batch.shape[0]:
            raise ValueError(f"{batch.shape[0]} images but {len(sizes)} sizes")
        probabilities, maps = self.infer(batch)
        return [
            ModelOutput(
                defect_probability=float(p),
                regions=self.extract_regions(m, float(p), size),
            )
            for p, m, size in zip(probabilities, maps, sizes, strict=True)
        ]

    def infer(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs for a preprocessed batch: defect probabilities N, class maps NxCxhxw."""
        if batch.shape[0] == 0:
            return np.zeros(0, np.float32), np.zeros((0, len(self.classes), 0, 0), np.float32)
        with torch.inference_mode():
            image_logits, map_logits = self.network(batch.to(self.device))
            probabilities = torch.sigmoid(image_logits).cpu().numpy()
            return probabilities, torch.sigmoid(map_logits).cpu().numpy()

    def infer_with_embeddings(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Defect probabilities N and embeddings NxD (the pooled features the image head
        reads) for a preprocessed batch, from the same single pass as infer."""
        if batch.shape[0] == 0:
            return np.zeros(0, np.float32), np.zeros((0, self.embedding_size), np.float32)
        with torch.inference_mode():
            image_logits, _, pooled = self.network.forward_with_features(batch.to(self.device))
            return torch.sigmoid(image_logits).cpu().numpy(), pooled.float().cpu().numpy()

    @property
    def embedding_size(self) -> int:
        return int(self.network.image_head.in_features)

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Embeddings NxD of images (see infer_with_embeddings)."""
        return self.infer_with_embeddings(self.preprocess(images))[1]

    def extract_regions(
        self, prob_map: np.ndarray, defect_probability: float, size: tuple[int, int]
    ) -> tuple[Region, ...]:
        """Boxes from one CxhxW probability map, in the pixels of an image of `size` (w, h).

        Only an image judged defective gets regions, and then always at least one.
        """
        if defect_probability < self.image_threshold:
            return ()
        cells = defect_map(prob_map)
        # threshold an interpolated map so box edges fall between cells, not on the coarse grid
        fine = torch.nn.functional.interpolate(
            torch.from_numpy(cells)[None, None],
            size=(self.preprocessing.input_size, self.preprocessing.input_size),
            mode="bilinear",
            align_corners=False,
        )[0, 0].numpy()
        top = float(fine.max())
        # nothing reaches the bar, yet the image looks defective: lower it so the inspector
        # still sees where the model looked
        threshold = self.pixel_threshold if top >= self.pixel_threshold else 0.5 * top
        stride_y, stride_x = fine.shape[0] // cells.shape[0], fine.shape[1] // cells.shape[1]
        width, height = size
        scale_x, scale_y = width / fine.shape[1], height / fine.shape[0]
        regions = []
        for rows, cols in connected_components(fine >= threshold):
            cell_rows, cell_cols = rows // stride_y, cols // stride_x
            regions.append(
                Region(
                    x0=float(cols.min()) * scale_x,
                    y0=float(rows.min()) * scale_y,
                    x1=float(cols.max() + 1) * scale_x,
                    y1=float(rows.max() + 1) * scale_y,
                    label=self.classes[int(prob_map[:, cell_rows, cell_cols].max(axis=1).argmax())],
                    score=float(cells[cell_rows, cell_cols].max()),
                )
            )
        regions.sort(key=lambda r: (-r.score, r.y0, r.x0))
        return tuple(r for r in regions if r.score >= self.region_threshold) or tuple(regions[:1])


def defect_map(prob_map: np.ndarray) -> np.ndarray:
    """Chance that a cell holds any defect, from the CxhxW per-class probabilities."""
    # noisy-OR, not max: where the class is unclear each channel stays near its share,
    # yet together they are sure something is there
    return 1.0 - np.prod(1.0 - prob_map, axis=0)


def connected_components(mask: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """8-connected components of a 2-D boolean mask, each as (rows, cols) index arrays."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return []
    # one sort groups every component's pixels together, instead of one scan per component
    rows, cols = np.nonzero(labels)
    owners = labels[rows, cols]
    order = np.argsort(owners, kind="stable")
    bounds = np.cumsum(np.bincount(owners, minlength=count + 1)[1:])[:-1]
    return list(zip(np.split(rows[order], bounds), np.split(cols[order], bounds), strict=True))
