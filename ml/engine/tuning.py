"""The small search that tunes a retraining: short fits over a grid of learning rates and
augmentation strengths, each scored on images held apart from the training ones.

Retraining itself is ml.engine.train.fit on every sample it is given, often with the active
model as `init` (a warm start, which learns a new defect type from a few hundred corrections
in a fraction of the time a model from scratch needs); the pipeline keeps its dataset
version's test split apart itself, so the candidate and the active model are compared on
the same images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from .dataset import LabeledImage
from .inference import DefectModel
from .train import TrainConfig, fit


@dataclass(frozen=True)
class Trial:
    learning_rate: float
    augmentation: float
    epochs: int
    score: float
    seconds: float


def tune(
    train: Sequence[LabeledImage],
    *,
    base: TrainConfig,
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
        config = replace(
            base,
            epochs=trial_epochs,
            learning_rate=learning_rate,
            augmentation=augmentation,
            time_budget_s=max(remaining, 1.0),
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
