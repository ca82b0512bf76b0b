"""Which unlabeled items are worth a human's boxes next: active learning over a model's outputs.

    score_images(model, images)                   -> probabilities N, embeddings NxD (one pass)
    select(probabilities, embeddings, reference_embeddings, k, strategy) -> [Pick], best first

Two terms say what an item would teach the model, and a third keeps the picks apart:
- uncertainty: the model's answer sits near its decision boundary (a known type, unclear);
- novelty: the item lies far from every labeled image. A defect type the model never saw is
  usually scored LOW, confidently "ok", not uncertain; only its distance from what was
  labeled gives it away, so novelty weighs double uncertainty by default. Distance is
  taken twice and the larger counts: in the model's own features (the pooled vector its
  image head reads, at half weight), and in plain appearance, patch by patch (each patch's
  mean colour beside its image's, nearest reference patch, as PatchCore does). The second is
  needed because a model learns to ignore what never mattered in its data: trained on phone
  backs of eight colours, its features barely move for a soft hue shift, the very look of a
  new discoloration (measured: new-type items vs the rest, AUROC 0.44-0.57 in the model's
  features, 0.89-0.93 in patch appearance). Novelty fades for items the model already
  rejects: they reach a human anyway, the ones it passes are the possible escapes;
- diversity: a greedy, score-weighted k-center pass scales down an item's score while it lies
  within `diversity_radius` of an item already picked, so a burst of near-duplicates (one
  camera glitch, fifty frames) costs the inspector one item, not fifty. Near means near in
  both the features and appearance: items of a new type all look alike to a model blind to
  them, and measured in its features alone, diversity let one of them through per batch.

Distances are measured after standardising each dimension by the reference set (the labeled
images), and in units of the reference's own typical distance, so the same strategy reads the
same on any model and any line. An embedding (score_images) is the model's pooled features
followed by the appearance block: appearance_grid^2 patch colours, then the image's mean
colour, all in the model's normalised input space. Plain numpy and torch; no Django.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch.nn import functional as F

if TYPE_CHECKING:
    from PIL import Image

    from .inference import DefectModel

REASONS = ("uncertain", "novel")


@dataclass(frozen=True)
class Strategy:
    """Every parameter of the ranking, shown to the people who work the queue.

    uncertainty_weight, novelty_weight: novelty weighs double by default. Measured
    (demo.labeling_measure): at equal weights the uncertain old-type items crowded out the
    new type once a first retraining had made it less novel.
    boundary: the defect probability where uncertainty peaks: the line's reject threshold
    (0.8 by default; labeling.candidates passes the line's own).
    neighbours: novelty is the mean distance to this many nearest reference embeddings.
    novelty_scale: that distance, divided by the reference's own median k-NN distance, maps
    to novelty r / (r + novelty_scale) after subtracting 1: an item as close to the labeled
    set as labeled images are to each other has novelty 0; one `novelty_scale` typical
    spacings beyond that has 0.5.
    reference_size: at most this many reference embeddings are used (a seeded sample).
    diversity_radius: in typical reference spacings; within it of an earlier pick an item's
    score is scaled by distance / radius. The distance is the larger of the two, in the model's
    features and in appearance: a near-duplicate is near in both, while items of a new type
    lie close together in features the model never learned to use. 0 turns it off.
    appearance_grid: the appearance block's patches per side (0: embeddings have none, as
    for embeddings from elsewhere); reference_patches caps the reference patches searched.
    feature_novelty_weight: how much novelty in the model's features counts beside
    appearance novelty (the larger of the two counts). Measured on a new discoloration: AUROC
    0.44 in the features against 0.89 in appearance, so features count half. Without an
    appearance block the features are all there is and count fully.
    discount_rejected: novelty counts fully up to the boundary and fades to 0 at p = 1. A
    novel item the model already rejects reaches a human anyway (review); one it passes is a
    possible escape, and labeling it teaches the model what it still misses.
    """

    name: str = "uncertainty + novelty of what the model passes, score-weighted k-center diversity"
    uncertainty_weight: float = 0.5
    novelty_weight: float = 1.0
    boundary: float = 0.8
    neighbours: int = 5
    novelty_scale: float = 1.0
    reference_size: int = 2000
    diversity_radius: float = 1.0
    appearance_grid: int = 8
    reference_patches: int = 20000
    feature_novelty_weight: float = 0.5
    discount_rejected: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.uncertainty_weight < 0 or self.novelty_weight < 0:
            raise ValueError("weights must not be negative")
        if self.uncertainty_weight + self.novelty_weight <= 0:
            raise ValueError("at least one weight must be positive")
        if not 0.0 < self.boundary < 1.0:
            raise ValueError("boundary must be within (0, 1)")
        if self.neighbours < 1 or self.reference_size < 2:
            raise ValueError("neighbours must be >= 1 and reference_size >= 2")
        if self.novelty_scale <= 0 or self.diversity_radius < 0:
            raise ValueError("novelty_scale must be positive, diversity_radius not negative")
        if not 0.0 <= self.feature_novelty_weight <= 1.0:
            raise ValueError("feature_novelty_weight must be within [0, 1]")
        if self.appearance_grid < 0 or self.reference_patches < 1:
            raise ValueError("appearance_grid must not be negative, reference_patches positive")

    @property
    def appearance_size(self) -> int:
        """Trailing embedding dimensions that hold the appearance block."""
        return 3 * self.appearance_grid**2 + 3 if self.appearance_grid else 0

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_STRATEGY = Strategy()


@dataclass(frozen=True)
class Pick:
    index: int
    score: float
    uncertainty: float
    novelty: float
    reason: str

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "score": round(self.score, 4),
            "uncertainty": round(self.uncertainty, 4),
            "novelty": round(self.novelty, 4),
            "reason": self.reason,
        }


def score_images(
    model: DefectModel,
    images: Sequence[Image.Image],
    batch_size: int = 32,
    strategy: Strategy = DEFAULT_STRATEGY,
) -> tuple[np.ndarray, np.ndarray]:
    """Defect probabilities N and embeddings NxD, one forward pass per batch. D is the
    model's embedding_size plus strategy.appearance_size; pass the same strategy to select."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    size = model.embedding_size + strategy.appearance_size
    probabilities = [np.zeros(0, np.float32)]
    embeddings = [np.zeros((0, size), np.float32)]
    for first in range(0, len(images), batch_size):
        batch = model.preprocess(images[first : first + batch_size])
        p, e = model.infer_with_embeddings(batch)
        probabilities.append(p)
        embeddings.append(np.hstack([e, appearance(batch, strategy.appearance_grid)]))
    return np.concatenate(probabilities), np.concatenate(embeddings)


def appearance(batch: torch.Tensor, grid: int) -> np.ndarray:
    """The appearance block of preprocessed images Nx3xHxW: grid x grid patch mean colours
    (row by row, RGB), then the image's mean colour. Nx0 when grid is 0."""
    if grid == 0:
        return np.zeros((batch.shape[0], 0), np.float32)
    with torch.inference_mode():
        x = batch.float().cpu()
        patches = F.adaptive_avg_pool2d(x, grid).permute(0, 2, 3, 1).reshape(len(x), -1)
        return torch.cat([patches, x.mean((2, 3))], dim=1).numpy()


def uncertainty(probabilities: np.ndarray, boundary: float = 0.5) -> np.ndarray:
    """1 at the boundary, falling linearly to 0 at p = 0 and p = 1."""
    p = np.clip(np.asarray(probabilities, np.float64), 0.0, 1.0)
    return np.where(p <= boundary, p / boundary, (1.0 - p) / (1.0 - boundary))


def novelty(
    embeddings: np.ndarray, reference_embeddings: np.ndarray, strategy: Strategy = DEFAULT_STRATEGY
) -> tuple[np.ndarray, np.ndarray, float]:
    """(novelty N in 0..1, the model-feature part of the pool standardised, NxD', and the
    reference's typical spacing in it). Novelty is the larger of feature and appearance novelty.

    With fewer than two reference embeddings nothing is known to be familiar: novelty is 0
    everywhere and the spacing comes from the pool itself.
    """
    pool = np.asarray(embeddings, np.float64)
    reference = _sample(np.asarray(reference_embeddings, np.float64), strategy)
    cut = pool.shape[1] - strategy.appearance_size
    if cut < 1:
        raise ValueError(
            f"embeddings of {pool.shape[1]} dimensions cannot hold model features and an "
            f"appearance block of {strategy.appearance_size} (appearance_grid "
            f"{strategy.appearance_grid}): score them with the same strategy"
        )
    if len(reference) < 2:
        z = _standardise(pool[:, :cut], pool[:, :cut])
        return np.zeros(len(pool)), z, _typical_spacing(z, strategy.neighbours)
    z_ref = _standardise(reference[:, :cut], reference[:, :cut])
    z = _standardise(pool[:, :cut], reference[:, :cut])
    spacing = _typical_spacing(z_ref, strategy.neighbours)
    k = min(strategy.neighbours, len(z_ref))
    features = _squash(_knn_mean(_distances(z, z_ref), k) / spacing, strategy.novelty_scale)
    if not strategy.appearance_size:
        return features, z, spacing
    looks = _appearance_novelty(pool[:, cut:], reference[:, cut:], strategy)
    return np.maximum(strategy.feature_novelty_weight * features, looks), z, spacing


def _squash(ratio: np.ndarray, scale: float) -> np.ndarray:
    """0 up to the reference's typical distance (ratio 1), 0.5 at 1 + scale, towards 1 beyond."""
    beyond = np.maximum(ratio - 1.0, 0.0)
    return beyond / (beyond + scale)


def _appearance_novelty(pool: np.ndarray, reference: np.ndarray, strategy: Strategy) -> np.ndarray:
    """Per image, the largest distance of one of its patches (the patch's colour beside its
    image's colour) to the nearest reference patch, in units of the same figure for reference
    images kept out of the searched patches (every fifth, at most 200)."""
    patches = _patches(pool, strategy.appearance_grid)
    ref_patches = _patches(reference, strategy.appearance_grid)
    held = np.arange(len(reference)) % 5 == 4 if len(reference) >= 5 else np.zeros(0, bool)
    held[np.flatnonzero(held)[200:]] = False
    bank = ref_patches[~held].reshape(-1, 6) if held.size else ref_patches.reshape(-1, 6)
    mean, std = bank.mean(axis=0), bank.std(axis=0)
    std = np.where(std > 1e-6, std, 1.0)
    if len(bank) > strategy.reference_patches:
        rng = np.random.default_rng(strategy.seed)
        bank = bank[rng.choice(len(bank), strategy.reference_patches, replace=False)]
    # six dimensions: a k-d tree finds each exact nearest patch in microseconds, where a
    # brute-force distance matrix (queries x 20,000) took most of a refresh's time
    tree = cKDTree((bank - mean) / std)

    def worst_patch(images: np.ndarray) -> np.ndarray:
        if len(images) == 0:
            return np.zeros(0)
        nearest, _ = tree.query((images.reshape(-1, 6) - mean) / std, k=1)
        return nearest.reshape(len(images), -1).max(axis=1)

    typical = float(np.median(worst_patch(ref_patches[held]))) if held.any() else 1.0
    return _squash(worst_patch(patches) / max(typical, 1e-9), strategy.novelty_scale)


def _patches(block: np.ndarray, grid: int) -> np.ndarray:
    """N x grid^2 x 6: each patch's colour beside its image's colour."""
    colours = block[:, : 3 * grid * grid].reshape(len(block), grid * grid, 3)
    image = np.repeat(block[:, None, -3:], grid * grid, axis=1)
    return np.concatenate([colours, image], axis=2)


def select(
    probabilities: np.ndarray,
    embeddings: np.ndarray,
    reference_embeddings: np.ndarray,
    k: int,
    strategy: Strategy = DEFAULT_STRATEGY,
) -> list[Pick]:
    """The k pool items worth a human's boxes next, in order (fewer if the pool is smaller).

    Deterministic: ties go to the lower index. Raises ValueError on mismatched shapes.
    """
    probabilities = np.asarray(probabilities, np.float64).reshape(-1)
    embeddings = np.asarray(embeddings, np.float64)
    reference_embeddings = np.asarray(reference_embeddings, np.float64)
    n = len(probabilities)
    if embeddings.ndim != 2 or len(embeddings) != n:
        raise ValueError(f"{n} probabilities but embeddings of shape {embeddings.shape}")
    if reference_embeddings.size and (
        reference_embeddings.ndim != 2 or reference_embeddings.shape[1] != embeddings.shape[1]
    ):
        raise ValueError(
            f"reference embeddings {reference_embeddings.shape} do not match {embeddings.shape}"
        )
    if k < 0:
        raise ValueError("k must not be negative")
    k = min(k, n)
    if k == 0:
        return []
    unsure = uncertainty(probabilities, strategy.boundary)
    reference = reference_embeddings.reshape(-1, embeddings.shape[1])
    novel, z, spacing = novelty(embeddings, reference, strategy)
    if strategy.discount_rejected:
        # a novel item the model already rejects reaches a human anyway (review); one it
        # passes is a possible escape: novelty counts fully up to the boundary, then fades
        beyond = np.clip((1.0 - probabilities) / (1.0 - strategy.boundary), 0.0, 1.0)
        novel = novel * beyond
    terms = np.stack([strategy.uncertainty_weight * unsure, strategy.novelty_weight * novel])
    score = terms.sum(axis=0)
    radius = strategy.diversity_radius
    # where an item was picked from: in typical spacings, features and (if any) appearance;
    # a near-duplicate is near in both, so the larger of the two distances counts
    spaces = [(z, spacing)]
    if strategy.appearance_size and len(reference) >= 2:
        cut = embeddings.shape[1] - strategy.appearance_size
        sampled = _sample(reference, strategy)[:, cut:]
        z_ref = _standardise(sampled, sampled)
        spaces.append(
            (
                _standardise(embeddings[:, cut:], sampled),
                _typical_spacing(z_ref, strategy.neighbours),
            )
        )
    # distance of each item to its nearest pick so far; inf until something is picked
    nearest = np.full(n, np.inf)
    available = np.ones(n, dtype=bool)
    picks: list[Pick] = []
    for _ in range(k):
        if radius > 0:
            adjusted = score * np.minimum(1.0, nearest / radius)
        else:
            adjusted = score.copy()
        adjusted[~available] = -np.inf
        best = int(np.argmax(adjusted))  # the first maximum: ties go to the lower index
        available[best] = False
        picks.append(
            Pick(
                index=best,
                score=float(adjusted[best]),
                uncertainty=float(unsure[best]),
                novelty=float(novel[best]),
                reason=REASONS[int(np.argmax(terms[:, best]))],
            )
        )
        if radius > 0:
            apart = np.max(
                [np.sqrt(((zs - zs[best]) ** 2).sum(axis=1)) / sp for zs, sp in spaces], axis=0
            )
            nearest = np.minimum(nearest, apart)
    return picks


def _sample(reference: np.ndarray, strategy: Strategy) -> np.ndarray:
    if len(reference) <= strategy.reference_size:
        return reference
    rng = np.random.default_rng(strategy.seed)
    return reference[np.sort(rng.choice(len(reference), strategy.reference_size, replace=False))]


def _standardise(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    if len(reference) == 0:
        return x
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    # a dimension constant on the reference (a dead feature) would blow any change up
    std = np.where(std > 1e-6 * max(float(std.max()), 1e-12), std, np.inf)
    return (x - mean) / std


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0))


def _knn_mean(distances: np.ndarray, k: int) -> np.ndarray:
    if distances.shape[1] == 0:
        return np.zeros(distances.shape[0])
    k = min(k, distances.shape[1])
    return np.partition(distances, k - 1, axis=1)[:, :k].mean(axis=1)


def _typical_spacing(z: np.ndarray, neighbours: int) -> float:
    """Median over the set of each member's mean distance to its k nearest other members."""
    if len(z) < 2:
        return 1.0
    d = _distances(z, z)
    np.fill_diagonal(d, np.inf)
    spacing = float(np.median(_knn_mean(d, min(neighbours, len(z) - 1))))
    return spacing if spacing > 0 else 1.0
