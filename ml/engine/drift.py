"""Data drift on images: cheap statistics of the model's input, and the tests that compare a
window of served images with a reference drawn from the model's training data.

Per image (`input_statistics`): brightness (mean luma), contrast (its std), sharpness (the
variance of a Laplacian of 3x3-smoothed luma), colour balance (R/G and B/G mean ratios), all on
the model's input (the uint8 pixels after the resize, on the 0..1 scale), so the cost does not
grow with the camera's resolution; the embedding (the pooled features the image head reads,
ml.engine.model.forward_with_features) cut to EMBEDDING_SIZE floats by a fixed random
projection; the image's own size, mode and channel count, and any of them the model never saw.

Per window (`compare`): one two-sample Kolmogorov-Smirnov test per statistic
(scipy.stats.ks_2samp) and a domain classifier's cross-validated AUC on the embeddings,
the p-values corrected together by Holm's method, so the chance that an unshifted window
raises any alarm stays at most `alpha`. Training augments every image with a brightness gain
of 1 +- jitter, so a window the model was trained to handle is not drift: each test asks
whether *some* gain within that range makes the window look like the reference (a composite
null hypothesis, whose p-value is the largest over the gains) and the embedding alarm also
needs an AUC of at least `auc_threshold`. Prediction drift (the probability histogram and the
reject rate) is reported beside it, on its own flag.

scipy.stats does the tests. alibi-detect (its KSDrift, ClassifierDrift, MMDDrift) would pull
38 packages (transformers, opencv, numba) and make pip downgrade numpy to 1.26 and Pillow to
10.4; evidently 58 (a web server, pandas, nltk, pyarrow) for tabular reports. Neither knows the
training augmentation, which is what keeps a trained-for lighting change from alarming.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from PIL import Image
from scipy import stats
from scipy.spatial.distance import jensenshannon

from .inference import DefectModel
from .types import ModelOutput

STATISTICS = ("brightness", "contrast", "sharpness", "red_green", "blue_green")
EMBEDDING_SIZE = 16
PROJECTION_SEED = 20261201
HISTOGRAM_BINS = 10
# modes and their channel counts; PIL's own names, so a 16-bit "I;16" is 1 channel
CHANNELS = {"1": 1, "L": 1, "P": 1, "I": 1, "F": 1, "I;16": 1, "LA": 2, "PA": 2, "RGB": 3}
SEEN_SIZES_KEPT = 32  # more distinct sizes than this: the model was trained on any size


# Per image --------------------------------------------------------------------------------


def batch_statistics(pixels: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """The statistics of N images, NxHxWx3 uint8 (or floats on 0..1), one array each."""
    if isinstance(pixels, torch.Tensor):
        pixels = pixels.detach().cpu().numpy()
    x = np.asarray(pixels)
    if x.ndim == 3:
        x = x[None]
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    # a 4-neighbour Laplacian of luma smoothed 3x3 first: a blurred camera loses it at once,
    # while sensor noise, which a darker scene does not dim, no longer dominates it
    smooth = (luma[:, :-2] + luma[:, 1:-1] + luma[:, 2:]) / 3.0
    smooth = (smooth[:, :, :-2] + smooth[:, :, 1:-1] + smooth[:, :, 2:]) / 3.0
    lap = (
        4.0 * smooth[:, 1:-1, 1:-1]
        - smooth[:, :-2, 1:-1]
        - smooth[:, 2:, 1:-1]
        - smooth[:, 1:-1, :-2]
        - smooth[:, 1:-1, 2:]
    )
    green = g.mean(axis=(1, 2))
    eps = 1e-6
    return {
        "brightness": luma.mean(axis=(1, 2)),
        "contrast": luma.std(axis=(1, 2)),
        "sharpness": lap.var(axis=(1, 2)),
        "red_green": r.mean(axis=(1, 2)) / (green + eps),
        "blue_green": b.mean(axis=(1, 2)) / (green + eps),
    }


def input_statistics(pixels: np.ndarray | torch.Tensor) -> dict[str, float]:
    """The statistics of one HxWx3 image (uint8, or floats on 0..1), as plain floats."""
    return {k: float(v[0]) for k, v in batch_statistics(pixels).items()}


@lru_cache(maxsize=8)
def projection(embedding_size: int, size: int = EMBEDDING_SIZE) -> np.ndarray:
    """The fixed Gaussian random projection DxK of embeddings of D floats: the same for every
    model with that embedding size, so served items and the reference agree without storing
    it. Distances survive it roughly (Johnson-Lindenstrauss), which is all the tests need."""
    rng = np.random.default_rng([PROJECTION_SEED, embedding_size, size])
    matrix = (rng.standard_normal((embedding_size, size)) / math.sqrt(size)).astype(np.float32)
    matrix.flags.writeable = False  # cached and shared
    return matrix


def project(embeddings: np.ndarray, size: int = EMBEDDING_SIZE) -> np.ndarray:
    embeddings = np.asarray(embeddings, dtype=np.float32)
    return embeddings @ projection(embeddings.shape[1], size)


def image_schema(image: Image.Image) -> dict:
    """What the camera sent, before the model's resize: size, mode and channel count."""
    return {
        "width": image.width,
        "height": image.height,
        "mode": image.mode,
        "channels": CHANNELS.get(image.mode, len(image.getbands())),
    }


def seen_schema(schemas: Iterable[dict], *, also: dict | None = None) -> dict:
    """The union of image schemas (and of an earlier union `also`): what a model trained on
    those images has seen. sizes None: too many to list, so any size counts as seen."""
    sizes, modes, channels = set(), set(), set()
    for s in schemas:
        sizes.add((int(s["width"]), int(s["height"])))
        modes.add(str(s["mode"]))
        channels.add(int(s["channels"]))
    if also:
        sizes = None if also.get("sizes") is None else sizes | {tuple(s) for s in also["sizes"]}
        modes |= set(also.get("modes", ()))
        channels |= set(also.get("channels", ()))
    return {
        "sizes": None
        if sizes is None or len(sizes) > SEEN_SIZES_KEPT
        else sorted([w, h] for w, h in sizes),
        "modes": sorted(modes),
        "channels": sorted(channels),
    }


def schema_skew(schema: dict, seen: dict | None) -> list[str]:
    """What in an item's schema the model never saw, in words; empty when all was seen or
    when what it saw is unknown (an artifact without it)."""
    if not seen:
        return []
    found = []
    sizes = seen.get("sizes")
    if sizes is not None and [schema["width"], schema["height"]] not in sizes:
        found.append(f"size {schema['width']}x{schema['height']}")
    if seen.get("modes") and schema["mode"] not in seen["modes"]:
        found.append(f"mode {schema['mode']}")
    if seen.get("channels") and schema["channels"] not in seen["channels"]:
        found.append(f"{schema['channels']} channels")
    return found


def predict_with_statistics(
    model: DefectModel, images: Sequence[Image.Image], *, seen: dict | None = None
) -> list[tuple[ModelOutput, dict]]:
    """model.predict's outputs, each with the image's drift record, from one resize and one
    pass of the network. seen: the schema the model was trained on (None: its artifact's
    hyperparameters["input_schema"], when it has one)."""
    if seen is None:
        seen = model.hyperparameters.get("input_schema")
    prep = model.preprocessing
    pixels = np.stack([prep.resize(im) for im in images]) if images else None
    if pixels is None:
        return []
    figures = batch_statistics(pixels)
    batch = prep.normalize(torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0)
    with torch.inference_mode():
        logits, maps, pooled = model.network.forward_with_features(batch.to(model.device))
        probabilities = torch.sigmoid(logits).cpu().numpy()
        maps = torch.sigmoid(maps).cpu().numpy()
        embeddings = project(pooled.float().cpu().numpy())
    results = []
    for i, image in enumerate(images):
        p = float(probabilities[i])
        output = ModelOutput(
            defect_probability=p, regions=model.extract_regions(maps[i], p, image.size)
        )
        schema = image_schema(image)
        record = {name: round(float(figures[name][i]), 6) for name in STATISTICS}
        record["embedding"] = [round(float(v), 5) for v in embeddings[i]]
        record["schema"] = schema
        record["skew"] = schema_skew(schema, seen)
        results.append((output, record))
    return results


# Reference --------------------------------------------------------------------------------


def gain_grid(jitter: float, steps: int = 9) -> tuple[float, ...]:
    """The brightness gains training covered (1 +- jitter), evenly spaced, 1 included."""
    if jitter <= 0:
        return (1.0,)
    return tuple(round(1.0 + jitter * float(t), 4) for t in np.linspace(-1.0, 1.0, steps))


def with_gain(pixels: np.ndarray, gain: float) -> np.ndarray:
    """uint8 NxHxWx3 -> floats on 0..1 brightened as training's augment does (then clipped)."""
    return np.clip(pixels.astype(np.float32) * np.float32(gain / 255.0), 0.0, 1.0)


@dataclass
class Reference:
    """A model's view of its training data: per statistic, values of every sampled image at
    each gain of `gains` ([gain][image]); embeddings likewise ([gain][image][k]); the
    probabilities likewise ([gain][image]); the schema it saw."""

    gains: list[float]
    statistics: dict[str, list[list[float]]]
    embeddings: list[list[list[float]]]
    probabilities: list[list[float]]
    schema: dict

    @property
    def size(self) -> int:
        return len(self.probabilities[0]) if self.probabilities else 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Reference:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def build_reference(
    model: DefectModel,
    images: Sequence[Image.Image],
    *,
    jitter: float,
    steps: int = 9,
    batch_size: int = 64,
    schema: dict | None = None,
) -> Reference:
    """Run the statistics and the network over the reference images at each training gain.
    Costs one pass per gain (`steps`): a few seconds for 500 images at 128 px on a CPU.
    schema: what the images were before a caller shrank them (default: the images' own)."""
    if not images:
        raise ValueError("a reference needs at least one image")
    prep = model.preprocessing
    gains = list(gain_grid(jitter, steps))
    values: dict[str, list[list[float]]] = {n: [[] for _ in gains] for n in STATISTICS}
    embeddings: list[list[list[float]]] = [[] for _ in gains]
    probabilities: list[list[float]] = [[] for _ in gains]
    for first in range(0, len(images), batch_size):
        pixels = np.stack([prep.resize(im) for im in images[first : first + batch_size]])
        for gi, gain in enumerate(gains):
            x = with_gain(pixels, gain)
            for name, v in batch_statistics(x).items():
                values[name][gi].extend(round(float(a), 6) for a in v)
            batch = prep.normalize(torch.from_numpy(x).permute(0, 3, 1, 2))
            with torch.inference_mode():
                logits, _, pooled = model.network.forward_with_features(batch.to(model.device))
            projected = project(pooled.float().cpu().numpy()).round(4)
            embeddings[gi].extend(projected.tolist())
            p = torch.sigmoid(logits).cpu().numpy()
            probabilities[gi].extend(round(float(v), 6) for v in p)
    return Reference(
        gains=gains,
        statistics=values,
        embeddings=embeddings,
        probabilities=probabilities,
        schema=schema or seen_schema(image_schema(im) for im in images),
    )


# Window tests -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DriftPolicy:
    """alpha: the chance an unshifted window raises the data-drift flag (after Holm's
    correction over all tests). auc_threshold: the domain classifier's AUC from which the
    embeddings count as shifted (0.5: indistinguishable). js_threshold and reject_margin: how
    far the probability histogram (Jensen-Shannon distance) and the reject rate may move
    before prediction drift is flagged. min_items: fewer window items give no verdict."""

    alpha: float = 0.001
    auc_threshold: float = 0.75
    js_threshold: float = 0.2
    reject_margin: float = 0.05
    min_items: int = 50
    folds: int = 5

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    statistics: dict[str, np.ndarray]
    embeddings: np.ndarray  # NxK, projected
    probabilities: np.ndarray

    @property
    def size(self) -> int:
        return len(self.probabilities)

    @classmethod
    def from_records(cls, records: Sequence[dict], probabilities: Sequence[float]) -> Window:
        """From the records predict_with_statistics made (Prediction.input_stats)."""
        return cls(
            statistics={n: np.array([r[n] for r in records], float) for n in STATISTICS},
            embeddings=np.array([r["embedding"] for r in records], float).reshape(len(records), -1),
            probabilities=np.asarray(probabilities, float),
        )


def compare(
    reference: Reference, window: Window, *, reject_threshold: float, policy: DriftPolicy
) -> dict:
    """Test a window against the reference; plain JSON out (see DriftPolicy for the flags).

    verdict: "too_few_items", "ok", "prediction_drift" (the inputs look as in training, the
    outputs do not) or "data_drift"."""
    result: dict = {"items": window.size, "reference_items": reference.size}
    if window.size < policy.min_items or reference.size < policy.min_items:
        return {**result, "verdict": "too_few_items"}
    tests = {}
    for name in STATISTICS:
        observed = window.statistics[name]
        # composite null: some trained-on gain makes the window look like the reference
        best = max(
            (stats.ks_2samp(observed, np.asarray(ref)) for ref in reference.statistics[name]),
            key=lambda r: r.pvalue,
        )
        tests[name] = {
            "p": float(best.pvalue),
            "ks": float(best.statistic),
            "window_median": float(np.median(observed)),
            "reference_median": float(np.median(reference.statistics[name][_unit(reference)])),
        }
    embedding = domain_classifier(reference, window.embeddings, folds=policy.folds)
    tests["embedding"] = embedding
    adjusted = holm(np.array([t["p"] for t in tests.values()]))
    for t, p in zip(tests.values(), adjusted, strict=True):
        t["p_adjusted"] = float(p)
        t["shifted"] = bool(p < policy.alpha)
    embedding["shifted"] = embedding["shifted"] and embedding["auc"] >= policy.auc_threshold
    data_drift = any(t["shifted"] for t in tests.values())
    predictions = prediction_drift(
        [np.asarray(p) for p in reference.probabilities],
        window.probabilities,
        reject_threshold=reject_threshold,
        policy=policy,
    )
    verdict = "data_drift" if data_drift else "prediction_drift" if predictions["shifted"] else "ok"
    return {
        **result,
        "tests": tests,
        "data_drift": data_drift,
        "predictions": predictions,
        "verdict": verdict,
    }


def _unit(reference: Reference) -> int:
    return min(range(len(reference.gains)), key=lambda i: abs(reference.gains[i] - 1.0))


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values: reject where below alpha, and the chance of any
    false rejection stays at most alpha whichever nulls are true (an alarm needs just one)."""
    n = len(p)
    order = np.argsort(p)
    adjusted = np.empty(n)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (n - rank) * float(p[i])))
        adjusted[i] = running
    return adjusted


def domain_classifier(reference: Reference, window: np.ndarray, *, folds: int = 5) -> dict:
    """Can a logistic regression tell the window's embeddings from the reference's? Its
    cross-validated AUC at each training gain, the lowest kept (the composite null again);
    its p-value is the one-sided Mann-Whitney test of the out-of-fold scores (approximate:
    folds share training data, hence the AUC threshold beside it)."""
    best = None
    for ref in reference.embeddings:
        ref = np.asarray(ref, float)
        x = np.vstack([ref, window])
        y = np.concatenate([np.zeros(len(ref)), np.ones(len(window))])
        scores = _out_of_fold_scores(x, y, folds)
        test = stats.mannwhitneyu(scores[y == 1], scores[y == 0], alternative="greater")
        auc = float(test.statistic) / (len(window) * len(ref))
        if best is None or auc < best["auc"]:
            best = {"auc": auc, "p": float(test.pvalue)}
    assert best is not None
    return {**best, "shifted": True}


def _out_of_fold_scores(x: np.ndarray, y: np.ndarray, folds: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    fold = np.empty(len(y), int)
    for label in (0, 1):  # stratified: each fold holds both sides in proportion
        idx = np.flatnonzero(y == label)
        fold[rng.permutation(idx)] = np.arange(len(idx)) % folds
    scores = np.empty(len(y))
    for k in range(folds):
        train, test = fold != k, fold == k
        mean, std = x[train].mean(0), x[train].std(0) + 1e-9
        w = _logistic((x[train] - mean) / std, y[train])
        scores[test] = np.c_[np.ones(test.sum()), (x[test] - mean) / std] @ w
    return scores


def _logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 25) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method, classes weighted to balance."""
    a = np.c_[np.ones(len(x)), x]
    weight = np.where(y == 1, 0.5 / max(y.sum(), 1), 0.5 / max((1 - y).sum(), 1)) * len(y)
    w = np.zeros(a.shape[1])
    penalty = l2 * np.eye(a.shape[1])
    penalty[0, 0] = 0.0
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-np.clip(a @ w, -30, 30)))
        gradient = a.T @ (weight * (p - y)) + penalty @ w
        hessian = (a * (weight * p * (1 - p))[:, None]).T @ a + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def prediction_drift(
    references: Sequence[np.ndarray],
    window: np.ndarray,
    *,
    reject_threshold: float,
    policy: DriftPolicy,
) -> dict:
    """The probability histogram (Jensen-Shannon distance and a chi-square test over
    HISTOGRAM_BINS bins) and the reject rate at the line's threshold, with Newcombe's
    interval for the difference (window - reference) at 1 - alpha; against the reference's
    probabilities at each training gain, the closest kept: shifted only where no gain the
    model was trained on explains the window's outputs either."""
    figures = [
        _prediction_figures(np.asarray(r), window, reject_threshold, policy) for r in references
    ]
    return min(figures, key=lambda f: (f["shifted"], f["js_distance"]))


def _prediction_figures(
    reference: np.ndarray, window: np.ndarray, reject_threshold: float, policy: DriftPolicy
) -> dict:
    edges = np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)
    ref_counts = np.histogram(np.clip(reference, 0, 1), edges)[0]
    win_counts = np.histogram(np.clip(window, 0, 1), edges)[0]
    table = np.vstack([ref_counts, win_counts])
    table = table[:, table.sum(0) > 0]
    p_hist = float(stats.chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
    js = float(jensenshannon(ref_counts / ref_counts.sum(), win_counts / win_counts.sum(), base=2))
    ref_rejects = int((reference >= reject_threshold).sum())
    win_rejects = int((window >= reject_threshold).sum())
    low, high = newcombe(win_rejects, len(window), ref_rejects, len(reference), policy.alpha)
    reject_shift = low > policy.reject_margin or high < -policy.reject_margin
    return {
        "histogram_reference": ref_counts.tolist(),
        "histogram_window": win_counts.tolist(),
        "js_distance": js,
        "histogram_p": p_hist,
        "reject_rate_reference": ref_rejects / len(reference),
        "reject_rate_window": win_rejects / len(window),
        "reject_difference_interval": [low, high],
        "shifted": bool((p_hist < policy.alpha and js >= policy.js_threshold) or reject_shift),
    }


def wilson(successes: int, n: int, alpha: float) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    z = float(stats.norm.ppf(1 - alpha / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def newcombe(a: int, n: int, b: int, m: int, alpha: float) -> tuple[float, float]:
    """Newcombe's hybrid score interval for a/n - b/m (his method 10)."""
    p1, p2 = a / n, b / m
    l1, u1 = wilson(a, n, alpha)
    l2, u2 = wilson(b, m, alpha)
    d = p1 - p2
    low = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return low, high
