"""Training a candidate for the retraining pipeline, and the small search that tunes it.

Unlike train.train_model, which holds out part of one folder, these functions train on every
sample they are given: the pipeline keeps its dataset version's test split apart itself, so
the candidate and the active model are compared on the same images. A candidate may start
from the active model's weights (warm start), which learns a new defect type from a few
hundred corrections in a fraction of the time a model from scratch needs.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .artifact import save_artifact
from .dataset import LabeledImage
from .inference import DefectModel, Preprocessing
from .model import (
    DEFAULT_ARCHITECTURE,
    INPUT_MULTIPLE,
    OUTPUT_STRIDE,
    build_model,
    with_more_classes,
)
from .train import (
    MAP_LOSS_WEIGHT,
    MAP_POS_WEIGHT,
    WEIGHT_DECAY,
    _calibrate_pixel_threshold,
    _classes,
    _decode,
    optimisation_step,
)


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 3e-3
    # brightness gain jitter (+-); flips and transposes are always on, they cost nothing
    augmentation: float = 0.25
    seed: int = 0
    input_size: int = 128
    time_budget_s: float = 240.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch_size and learning_rate must be positive")
        if not 0.0 <= self.augmentation < 1.0:
            raise ValueError("augmentation must be within [0, 1)")
        if self.input_size < INPUT_MULTIPLE or self.input_size % INPUT_MULTIPLE:
            raise ValueError(f"input_size must be a positive multiple of {INPUT_MULTIPLE}")
        if self.time_budget_s <= 0:
            raise ValueError("time_budget_s must be positive")


@dataclass(frozen=True)
class Trial:
    learning_rate: float
    augmentation: float
    epochs: int
    score: float
    seconds: float


def fit(
    samples: Sequence[LabeledImage],
    *,
    config: FitConfig = FitConfig(),  # noqa: B008 - frozen, so sharing it is safe
    init: DefectModel | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = lambda s: None,
    progress: Callable[[float], None] = lambda fraction: None,
) -> DefectModel:
    """Train on every sample and return the model (save it with save_model).

    With `init` the network starts from init's weights and keeps its preprocessing and
    classes; a class the samples hold and init lacks gets a new channel after init's.
    """
    if not samples:
        raise ValueError("no images to train on")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    if init is not None:
        new = tuple(sorted({b.label for s in samples for b in s.boxes} - set(init.classes)))
        classes = tuple(init.classes) + new
        preprocessing = init.preprocessing
        pixels, masks, labels = _decode(samples, classes, preprocessing.input_size)
        network = copy.deepcopy(init.network)
        if new:
            log(f"new classes {', '.join(new)}: the map head grows from {len(init.classes)}")
            network = with_more_classes(network, len(new))
        network = network.to(device)
        architecture = init.architecture
    else:
        classes = _classes(samples)
        pixels, masks, labels = _decode(samples, classes, config.input_size)
        mean = pixels.float().mean(dim=(0, 2, 3)) / 255.0
        std = (pixels.float() / 255.0).std(dim=(0, 2, 3)).clamp_min(1e-3)
        preprocessing = Preprocessing(config.input_size, tuple(mean.tolist()), tuple(std.tolist()))
        network = build_model(DEFAULT_ARCHITECTURE, len(classes)).to(device)
        architecture = DEFAULT_ARCHITECTURE
    pixels, masks, labels = pixels.to(device), masks.to(device), labels.to(device)
    log(f"decoded {len(samples)} images in {time.perf_counter() - started:.1f}s")

    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=WEIGHT_DECAY
    )
    pos_weight = torch.tensor(MAP_POS_WEIGHT, device=device)
    total_steps = math.ceil(len(samples) / config.batch_size) * config.epochs
    loop_started = time.perf_counter()
    step = epochs_done = 0
    for epoch in range(config.epochs):
        network.train()
        order = torch.randperm(len(samples), generator=generator).to(device)
        loss_sum = 0.0
        for first in range(0, len(samples), config.batch_size):
            index = order[first : first + config.batch_size]
            x, target = _augment(pixels[index], masks[index], generator, config.augmentation)
            # cosine decay over whichever runs out first, steps or time (as train_model does)
            spent = (time.perf_counter() - loop_started) / config.time_budget_s
            fraction = min(1.0, max(step / total_steps, spent))
            loss = optimisation_step(
                network,
                optimizer,
                preprocessing.normalize(x),
                labels[index],
                target,
                pos_weight=pos_weight,
                learning_rate=config.learning_rate * 0.5 * (1 + math.cos(math.pi * fraction)),
            )
            loss_sum += loss * len(index)
            step += 1
        epochs_done += 1
        log(f"epoch {epoch + 1}/{config.epochs} loss {loss_sum / len(samples):.4f}")
        progress(epochs_done / config.epochs)
        if time.perf_counter() - loop_started >= config.time_budget_s:
            log(f"time budget of {config.time_budget_s:.0f}s reached after {epochs_done} epochs")
            break

    pixel_threshold = _calibrate_pixel_threshold(
        network, classes, preprocessing, samples, pixels, config.batch_size, device
    )
    hyperparameters = {
        **asdict(config),
        "input_size": preprocessing.input_size,
        "pixel_threshold": pixel_threshold,
        "epochs_completed": epochs_done,
        "warm_start": init is not None,
        "weight_decay": WEIGHT_DECAY,
        "map_loss_weight": MAP_LOSS_WEIGHT,
        "map_pos_weight": MAP_POS_WEIGHT,
        "output_stride": OUTPUT_STRIDE,
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


def tune(
    train: Sequence[LabeledImage],
    *,
    base: FitConfig,
    learning_rates: Sequence[float],
    augmentations: Sequence[float],
    trial_epochs: int,
    time_budget_s: float,
    score: Callable[[DefectModel], float],
    init: DefectModel | None = None,
    device: str = "cpu",
    log: Callable[[str], None] = lambda s: None,
    on_trial: Callable[[Trial], None] = lambda trial: None,
) -> list[Trial]:
    """Short trainings over the grid of learning rates x augmentation strengths, in order,
    each judged by `score` (higher is better, on images held apart from `train`).

    A trial starts only while the time budget lasts, and is itself cut to what remains; the
    first always runs, so there is always a best trial. Returns the trials run.
    """
    started = time.perf_counter()
    trials: list[Trial] = []
    grid = [(lr, aug) for lr in learning_rates for aug in augmentations]
    for number, (learning_rate, augmentation) in enumerate(grid, start=1):
        remaining = time_budget_s - (time.perf_counter() - started)
        if trials and remaining <= 0:
            log(f"tuning budget of {time_budget_s:.0f}s spent after {len(trials)} trials")
            break
        trial_started = time.perf_counter()
        config = FitConfig(
            **{
                **asdict(base),
                "epochs": trial_epochs,
                "learning_rate": learning_rate,
                "augmentation": augmentation,
                "time_budget_s": max(remaining, 1.0),
            }
        )
        model = fit(train, config=config, init=init, device=device)
        trial = Trial(
            learning_rate=learning_rate,
            augmentation=augmentation,
            epochs=model.hyperparameters["epochs_completed"],
            score=float(score(model)),
            seconds=time.perf_counter() - trial_started,
        )
        log(
            f"trial {number}/{len(grid)}: learning rate {learning_rate:g}, augmentation "
            f"{augmentation:g}: score {trial.score:.4f} in {trial.seconds:.1f}s"
        )
        trials.append(trial)
        on_trial(trial)
    return trials


def best_trial(trials: Sequence[Trial]) -> Trial:
    # ties go to the earlier trial, so the choice does not depend on timing noise
    return max(enumerate(trials), key=lambda pair: (pair[1].score, -pair[0]))[1]


def _augment(
    pixels: torch.Tensor, masks: torch.Tensor, generator: torch.Generator, jitter: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, transposes and a brightness gain of 1 +- jitter; masks follow geometry."""
    n = pixels.shape[0]
    device = pixels.device
    x = pixels.float() / 255.0
    for dims in ((3,), (2,)):
        pick = (torch.rand(n, generator=generator) < 0.5).to(device).view(n, 1, 1, 1)
        x = torch.where(pick, x.flip(dims), x)
        masks = torch.where(pick, masks.flip(dims), masks)
    pick = (torch.rand(n, generator=generator) < 0.5).to(device).view(n, 1, 1, 1)
    x = torch.where(pick, x.transpose(2, 3), x)
    masks = torch.where(pick, masks.transpose(2, 3), masks)
    gain = 1.0 + jitter * (2 * torch.rand(n, 1, 1, 1, generator=generator) - 1)
    return (x * gain.to(device)).clamp(0.0, 1.0), masks
