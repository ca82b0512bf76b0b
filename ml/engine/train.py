"""The engine's one training loop, and first training from a COCO folder into one artifact.

    fit(samples, config, init=None) -> DefectModel      every training goes through this
    train_model(data_dir, out_path, config)             first training: split, fit, save
    save_model(model, path, metrics)                    the artifact load_artifact reads

`fit` trains on every sample it is given. First training (train_model) holds part of its
folder out by file name first and reports the model's figures on that part. Retraining (the
pipeline) keeps its dataset version's test split apart itself and calls `fit` directly,
usually with `init`, the active model, to start from its weights (a warm start); the tuning
search over learning rates and augmentation strengths is ml.engine.tuning.tune.
"""

from __future__ import annotations

import copy
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from .artifact import save_artifact
from .dataset import LabeledImage, load_coco_folder
from .drift import image_schema, seen_schema
from .generator import DEFECT_CLASSES
from .inference import DefectModel, Preprocessing
from .metrics import box_hit_rate, evaluate
from .model import (
    DEFAULT_ARCHITECTURE,
    INPUT_MULTIPLE,
    OUTPUT_STRIDE,
    build_model,
    with_more_classes,
)

WEIGHT_DECAY = 1e-4
MAP_LOSS_WEIGHT = 4.0
MAP_POS_WEIGHT = 2.0  # defect cells are a few percent of the map; don't let "all clear" win
PIXEL_THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
DEFAULT_PIXEL_THRESHOLD = 0.5
CALIBRATION_IMAGES = 400


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training. A warm start keeps its parent's input size instead of
    input_size; holdout_fraction is train_model's split (fit itself holds nothing out)."""

    epochs: int = 36
    batch_size: int = 32
    learning_rate: float = 3e-3
    # brightness gain jitter (+-); flips and transposes are always on, they cost nothing
    augmentation: float = 0.25
    seed: int = 0
    input_size: int = 128
    holdout_fraction: float = 0.2
    time_budget_s: float = 240.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")
        if not 0.0 <= self.augmentation < 1.0:
            raise ValueError("augmentation must be within [0, 1)")
        if self.input_size < INPUT_MULTIPLE or self.input_size % INPUT_MULTIPLE:
            raise ValueError(f"input_size must be a positive multiple of {INPUT_MULTIPLE}")
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise ValueError("holdout_fraction must be within [0, 1)")
        if self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")


@dataclass(frozen=True)
class TrainResult:
    artifact_path: Path
    sha256: str
    metrics: dict[str, float]
    architecture: str
    hyperparameters: dict
    train_seconds: float
    train_count: int
    holdout_count: int


def split_samples(
    samples: Sequence[LabeledImage], holdout_fraction: float
) -> tuple[list[LabeledImage], list[LabeledImage]]:
    """Held-out membership depends only on the file name, so it survives dataset growth."""
    train, holdout = [], []
    for sample in samples:
        digest = hashlib.sha256(sample.path.name.encode()).digest()
        (holdout if int.from_bytes(digest[:8]) / 2**64 < holdout_fraction else train).append(sample)
    return train, holdout


def train_model(
    data_dir: Path,
    out_path: Path,
    *,
    config: TrainConfig = TrainConfig(),  # noqa: B008 - frozen, so sharing it is safe
    device: str = "cpu",
    log: Callable[[str], None] = lambda s: None,
) -> TrainResult:
    """First training: split the folder, fit a model from scratch on the training part,
    judge it on the held-out part and save it with those figures to `out_path`."""
    started = time.perf_counter()
    samples = load_coco_folder(Path(data_dir))
    train, holdout = split_samples(samples, config.holdout_fraction)
    if not train:
        raise ValueError(f"{data_dir}: no images left for training after the hold-out split")
    # a class only the held-out images show still gets an output, and so a recall
    labels = {box.label for sample in samples for box in sample.boxes}
    model = fit(train, config=config, extra_classes=labels, device=device, log=log)
    model.hyperparameters = {**model.hyperparameters, "holdout_fraction": config.holdout_fraction}
    metrics = evaluate(model, holdout) if holdout else {"count": 0.0}
    sha256 = save_model(model, Path(out_path), metrics=metrics)
    seconds = time.perf_counter() - started
    log(f"trained in {seconds:.1f}s; held-out metrics {metrics}")
    return TrainResult(
        artifact_path=Path(out_path),
        sha256=sha256,
        metrics=metrics,
        architecture=model.architecture,
        hyperparameters=model.hyperparameters,
        train_seconds=seconds,
        train_count=len(train),
        holdout_count=len(holdout),
    )


def fit(
    samples: Sequence[LabeledImage],
    *,
    config: TrainConfig = TrainConfig(),  # noqa: B008 - frozen, so sharing it is safe
    init: DefectModel | None = None,
    extra_classes: Iterable[str] = (),
    device: str = "cpu",
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[float], None] = lambda fraction: None,
) -> DefectModel:
    """Train on every sample and return the model (save it with save_model).

    Without `init` the network starts from scratch, with an output for each known defect
    class and each other class the samples (or `extra_classes`) name. With `init` it starts
    from init's weights and keeps its preprocessing and classes; a class init lacks gets a
    new output after init's. Deterministic for a seed, unless the time budget cuts it short.
    """
    if not samples:
        raise ValueError("no images to train on")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    labels = {b.label for s in samples for b in s.boxes} | set(extra_classes)
    if init is not None:
        new = tuple(sorted(labels - set(init.classes)))
        classes = tuple(init.classes) + new
        preprocessing = init.preprocessing
        pixels, masks, targets, known = _decode(samples, classes, preprocessing.input_size)
        network = copy.deepcopy(init.network)
        if new:
            log(f"new classes {', '.join(new)}: the map head grows from {len(init.classes)}")
            network = with_more_classes(network, len(new))
        network = network.to(device)
        architecture = init.architecture
    else:
        # the known classes always get a channel so models trained on different mixes line up
        classes = DEFECT_CLASSES + tuple(sorted(labels - set(DEFECT_CLASSES)))
        pixels, masks, targets, known = _decode(samples, classes, config.input_size)
        mean = pixels.float().mean(dim=(0, 2, 3)) / 255.0
        std = (pixels.float() / 255.0).std(dim=(0, 2, 3)).clamp_min(1e-3)
        preprocessing = Preprocessing(config.input_size, tuple(mean.tolist()), tuple(std.tolist()))
        network = build_model(DEFAULT_ARCHITECTURE, len(classes)).to(device)
        architecture = DEFAULT_ARCHITECTURE
    # oneDNN's convolutions train about twice as fast with channels last on CPU (0.23 s
    # against 0.46 s per step of 32 images at 128 px, 2 threads). Serving keeps the default
    # layout, which is faster for one image at a time; an artifact stores values, not layout.
    network = network.to(memory_format=torch.channels_last)
    pixels, masks, targets = pixels.to(device), masks.to(device), targets.to(device)
    known = known.to(device)
    log(f"decoded {len(samples)} images in {time.perf_counter() - started:.1f}s")
    unmapped = len(samples) - int(known.sum())
    if unmapped:
        log(f"{unmapped} defective images without boxes train the image head only")

    epochs_done = _epochs(
        network,
        preprocessing,
        (pixels, masks, targets, known),
        generator,
        config,
        device,
        log,
        progress,
    )
    pixel_threshold = _calibrate_pixel_threshold(
        network, classes, preprocessing, samples, pixels, config.batch_size, device
    )
    hyperparameters = {
        **{k: v for k, v in asdict(config).items() if k != "holdout_fraction"},
        "input_size": preprocessing.input_size,
        "pixel_threshold": pixel_threshold,
        "epochs_completed": epochs_done,
        "warm_start": init is not None,
        "weight_decay": WEIGHT_DECAY,
        "map_loss_weight": MAP_LOSS_WEIGHT,
        "map_pos_weight": MAP_POS_WEIGHT,
        "output_stride": OUTPUT_STRIDE,
        "images_without_map_target": unmapped,
        # what serving flags as schema skew (ml.engine.drift): sizes, modes, channels trained on
        "input_schema": _input_schema(samples, init),
    }
    log(f"trained in {time.perf_counter() - started:.1f}s, pixel threshold {pixel_threshold}")
    return DefectModel(
        network,
        classes=classes,
        architecture=architecture,
        preprocessing=preprocessing,
        hyperparameters=hyperparameters,
        device=device,
        pixel_threshold=pixel_threshold,
    )


def _input_schema(samples: Sequence[LabeledImage], init: DefectModel | None) -> dict:
    schemas = []
    for sample in samples:
        with Image.open(sample.path) as image:  # the header only: no decode
            schemas.append(image_schema(image))
    # a warm start has seen its parent's inputs too
    parent = init.hyperparameters.get("input_schema") if init is not None else None
    return seen_schema(schemas, also=parent)


def save_model(model: DefectModel, path: Path, *, metrics: dict) -> str:
    """Write the model as an artifact load_artifact reads; return the file's sha256."""
    return save_artifact(
        Path(path),
        model=model.network,
        preprocessing=model.preprocessing,
        classes=model.classes,
        architecture=model.architecture,
        hyperparameters=model.hyperparameters,
        metrics=metrics,
    )


def _epochs(
    network: torch.nn.Module,
    preprocessing: Preprocessing,
    decoded: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    generator: torch.Generator,
    config: TrainConfig,
    device: str,
    log: Callable[[str], None],
    progress: Callable[[float], None],
) -> int:
    """The epoch loop over decoded images (pixels, masks, image labels, whether each mask is
    known); returns how many epochs ran before the budget."""
    pixels, masks, labels, known = decoded
    count = pixels.shape[0]
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=WEIGHT_DECAY
    )
    pos_weight = torch.tensor(MAP_POS_WEIGHT, device=device)
    total_steps = math.ceil(count / config.batch_size) * config.epochs
    loop_started = time.perf_counter()
    step = epochs_done = 0
    for epoch in range(config.epochs):
        network.train()
        epoch_started = time.perf_counter()
        order = torch.randperm(count, generator=generator).to(device)
        loss_sum = 0.0
        for first in range(0, count, config.batch_size):
            index = order[first : first + config.batch_size]
            x, target = augment(pixels[index], masks[index], generator, config.augmentation)
            # cosine decay over whichever runs out first, steps or time, so a run cut short
            # by the budget still ends at a low learning rate
            spent = (time.perf_counter() - loop_started) / config.time_budget_s
            fraction = min(1.0, max(step / total_steps, spent))
            loss = optimisation_step(
                network,
                optimizer,
                preprocessing.normalize(x),
                labels[index],
                target,
                known[index],
                pos_weight=pos_weight,
                learning_rate=config.learning_rate * 0.5 * (1 + math.cos(math.pi * fraction)),
            )
            loss_sum += loss * len(index)
            step += 1
        epochs_done += 1
        log(
            f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / count:.4f} "
            f"{time.perf_counter() - epoch_started:.1f}s"
        )
        progress(epochs_done / config.epochs)
        if time.perf_counter() - loop_started >= config.time_budget_s:
            log(f"time budget of {config.time_budget_s:.0f}s reached after {epochs_done} epochs")
            break
    return epochs_done


def optimisation_step(
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    labels: torch.Tensor,
    target: torch.Tensor,
    known: torch.Tensor,
    *,
    pos_weight: torch.Tensor,
    learning_rate: float,
) -> float:
    """One step on a normalised batch; returns the loss (training_loss)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
    image_logits, map_logits = network(x.contiguous(memory_format=torch.channels_last))
    loss = training_loss(image_logits, map_logits, labels, target, known, pos_weight=pos_weight)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def training_loss(
    image_logits: torch.Tensor,
    map_logits: torch.Tensor,
    labels: torch.Tensor,
    target: torch.Tensor,
    known: torch.Tensor,
    *,
    pos_weight: torch.Tensor,
) -> torch.Tensor:
    """Image loss over every image, plus the weighted map loss over the images whose map is
    known (`known`, booleans N). A defective image without boxes has no map truth: an all-zero
    target would teach the map that its defect is background, so it is left out."""
    image_loss = F.binary_cross_entropy_with_logits(image_logits, labels)
    if bool(known.all()):
        # the plain mean, so a set with boxes everywhere trains exactly as it always did
        map_loss = F.binary_cross_entropy_with_logits(map_logits, target, pos_weight=pos_weight)
    else:
        per_cell = F.binary_cross_entropy_with_logits(
            map_logits, target, pos_weight=pos_weight, reduction="none"
        )
        weight = known.to(per_cell.dtype)
        per_image = per_cell.mean(dim=(1, 2, 3))
        map_loss = (per_image * weight).sum() / weight.sum().clamp_min(1.0)
    return image_loss + MAP_LOSS_WEIGHT * map_loss


def augment(
    pixels: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, jitter: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, transposes and a brightness gain of 1 +- jitter per image, on uint8
    images; returns 0..1 floats, and masks that follow the geometry."""
    n = pixels.shape[0]
    device = pixels.device
    x = pixels.float() / 255.0
    for dims in ((3,), (2,)):
        pick = (torch.rand(n, generator=generator) < 0.5).to(device).view(n, 1, 1, 1)
        x = torch.where(pick, x.flip(dims), x)
        masks = torch.where(pick, masks.flip(dims), masks)
    # square inputs, so a transpose plus the flips covers all eight rotations and mirrors
    pick = (torch.rand(n, generator=generator) < 0.5).to(device).view(n, 1, 1, 1)
    x = torch.where(pick, x.transpose(2, 3), x)
    masks = torch.where(pick, masks.transpose(2, 3), masks)
    gain = 1.0 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    return (x * gain.to(device)).clamp(0.0, 1.0), masks


def _calibrate_pixel_threshold(
    network: torch.nn.Module,
    classes: tuple[str, ...],
    preprocessing: Preprocessing,
    samples: Sequence[LabeledImage],
    pixels: torch.Tensor,
    batch_size: int,
    device: str,
) -> float:
    """The map threshold whose boxes best match the true boxes of defective training images.

    How far the map spreads around a defect differs from run to run, so a fixed threshold
    would make boxes too loose in one model and too tight in the next.
    """
    picked = [i for i, s in enumerate(samples) if s.boxes][:CALIBRATION_IMAGES]
    if not picked:
        return DEFAULT_PIXEL_THRESHOLD
    model = DefectModel(
        network, classes=classes, architecture="", preprocessing=preprocessing, device=device
    )
    probabilities, maps = [], []
    for first in range(0, len(picked), batch_size):
        index = torch.tensor(picked[first : first + batch_size], device=pixels.device)
        p, m = model.infer(preprocessing.normalize(pixels[index].float() / 255.0))
        probabilities.extend(p.tolist())
        maps.extend(m)
    truth = [samples[i].boxes for i in picked]
    sizes = [(samples[i].width, samples[i].height) for i in picked]

    def hit_rate(threshold: float) -> float:
        model.pixel_threshold = threshold
        found = [
            model.extract_regions(m, p, size)
            for m, p, size in zip(maps, probabilities, sizes, strict=True)
        ]
        return box_hit_rate(truth, found)

    # among equally good thresholds prefer the middle of the range
    return max(PIXEL_THRESHOLDS, key=lambda t: (round(hit_rate(t), 3), -abs(t - 0.5)))


def _decode(
    samples: Sequence[LabeledImage], classes: tuple[str, ...], size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """uint8 images Nx3xSxS, box masks NxCx(S/4)x(S/4), image labels N and whether each mask
    is known N, all in memory. Images of any size are resized to S, their boxes with them."""
    fit = Preprocessing(size, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    cells = size // OUTPUT_STRIDE
    pixels = np.empty((len(samples), size, size, 3), np.uint8)
    masks = np.zeros((len(samples), len(classes), cells, cells), np.float32)
    channel = {name: i for i, name in enumerate(classes)}
    for i, sample in enumerate(samples):
        with Image.open(sample.path) as image:
            pixels[i] = fit.resize(image)
        # boxes are rescaled with the image, then each touched map cell is marked
        sx = cells / sample.width
        sy = cells / sample.height
        for box in sample.boxes:
            c0, c1 = _cell_span(box.x0 * sx, box.x1 * sx, cells)
            r0, r1 = _cell_span(box.y0 * sy, box.y1 * sy, cells)
            masks[i, channel[box.label], r0:r1, c0:c1] = 1.0
    labels = torch.tensor([float(s.is_defective) for s in samples])
    known = torch.tensor([s.has_map_target for s in samples], dtype=torch.bool)
    return (
        torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous(),
        torch.from_numpy(masks),
        labels,
        known,
    )


def _cell_span(lo: float, hi: float, cells: int) -> tuple[int, int]:
    start = min(max(int(math.floor(lo)), 0), cells - 1)
    end = max(min(int(math.ceil(hi)), cells), start + 1)
    return start, end
