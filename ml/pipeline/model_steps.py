"""The model steps: tune (a short search over learning rates and augmentation strengths),
train (ml.engine.train.fit on the train split, warm-started from the active model) and
evaluate (the candidate and the active model on the same test split and corrections).

torch, and the engine modules that load it (train, tuning, artifact), are imported inside
the step functions: the web process imports this package to start runs, and does not load
torch (see inspection.inference).
"""

import os
import time
from dataclasses import asdict
from pathlib import Path

from django.conf import settings

from ml import services
from ml.engine.evaluate import evaluate_at_thresholds
from ml.pipeline.context import (
    StepContext,
    folder_samples,
    line_thresholds,
    load_version,
    prepare_torch,
    training_samples,
)


def _warm_start(context: StepContext, samples, device: str):
    """The active model to start from when the config asks for it, else None (a model from
    scratch). A class the active model lacks gets a new output (ml.engine.train.fit)."""
    baseline = context.run.baseline
    if not context.config["warm_start"] or baseline is None:
        return None
    model = load_version(baseline, device)
    new = {box.label for sample in samples for box in sample.boxes} - set(model.classes)
    if new:
        context.log(f"{baseline} has no output for {', '.join(sorted(new))}: one each is added")
    return model


def _fit_config(config: dict, **changes):
    from ml.engine.train import TrainConfig

    values = {
        "epochs": config["epochs"],
        "batch_size": config["batch_size"],
        "learning_rate": config["learning_rates"][0],
        "augmentation": config["augmentations"][0],
        "seed": config["seed"],
        "input_size": config["input_size"],
        "time_budget_s": config["train_budget_s"],
    }
    return TrainConfig(**{**values, **changes})


def selection_score(figures: dict) -> float:
    """How tuning ranks trials on the val split: the mean of AUROC and F1 at the reject
    threshold (F1 alone when the split lacks one of the two labels)."""
    f1 = figures["reject"]["f1"]
    return (figures["auroc"] + f1) / 2 if "auroc" in figures else f1


def tune(context: StepContext) -> dict:
    from ml.engine.tuning import best_trial
    from ml.engine.tuning import tune as run_trials

    config = context.config
    device = prepare_torch()
    train, val = training_samples(context), folder_samples(context, "val")
    init = _warm_start(context, train, device)
    grid = len(config["learning_rates"]) * len(config["augmentations"])
    if not val:
        context.log("no validation images: tuning skipped, the first settings are used")
        best = {
            "learning_rate": config["learning_rates"][0],
            "augmentation": config["augmentations"][0],
        }
        return {"trials": [], "best": best, "skipped": "no validation images"}
    thresholds = line_thresholds(context.run.line)
    trials = []

    def recorded(trial) -> None:
        trials.append(trial)
        context.progress(len(trials) / grid)

    run_trials(
        train,
        base=_fit_config(config),
        learning_rates=config["learning_rates"],
        augmentations=config["augmentations"],
        trial_epochs=config["trial_epochs"],
        time_budget_s=config["tune_budget_s"],
        score=lambda model: selection_score(evaluate_at_thresholds(model, val, **thresholds)),
        init=init,
        device=device,
        log=context.log,
        on_trial=recorded,
    )
    best = best_trial(trials)
    context.log(f"best: learning rate {best.learning_rate:g}, augmentation {best.augmentation:g}")
    return {
        "trials": [asdict(t) for t in trials],
        "best": {"learning_rate": best.learning_rate, "augmentation": best.augmentation},
        "grid": grid,
        "budget_s": config["tune_budget_s"],
        "warm_start_from": context.run.baseline.name if init is not None else None,
    }


def train(context: StepContext) -> dict:
    from ml.engine.train import fit, save_model

    device = prepare_torch()
    samples = training_samples(context)
    init = _warm_start(context, samples, device)
    best = context.earlier["tune"]["best"]
    fit_config = _fit_config(
        context.config, learning_rate=best["learning_rate"], augmentation=best["augmentation"]
    )
    started = time.perf_counter()
    model = fit(
        samples,
        config=fit_config,
        init=init,
        device=device,
        log=context.log,
        progress=context.progress,
    )
    seconds = time.perf_counter() - started
    # the run in the artifact makes its hash its own: two runs that train byte-identical
    # weights (same data, same seed, say a demo on a second line) stay two versions
    model.hyperparameters = {**model.hyperparameters, "pipeline_run": context.run.pk}
    model_dir = Path(settings.LOUPE_MODEL_DIR)
    scratch = model_dir / f".run-{context.run.pk}-{os.getpid()}.pt"
    try:
        sha256 = save_model(model, scratch, metrics={})
        final = model_dir / f"{sha256}.pt"
        os.replace(scratch, final)
    finally:
        scratch.unlink(missing_ok=True)
    context.log(f"artifact {final.name}, trained in {seconds:.1f}s on {len(samples)} images")
    return {
        "artifact": final.name,
        "sha256": sha256,
        "train_seconds": round(seconds, 2),
        "train_images": len(samples),
        "hyperparameters": model.hyperparameters,
        "warm_start_from": context.run.baseline.name if init is not None else None,
    }


def evaluate(context: StepContext) -> dict:
    """The candidate and the baseline on the same test split, and on the held-out
    corrections since the baseline was trained, at the line's thresholds."""
    from ml.engine.artifact import load_artifact

    device = prepare_torch()
    trained = context.earlier["train"]
    candidate = load_artifact(
        Path(settings.LOUPE_MODEL_DIR) / trained["artifact"],
        device=device,
        expected_sha256=trained["sha256"],
    )
    baseline = context.run.baseline
    active = load_version(baseline, device) if baseline else None
    thresholds = line_thresholds(context.run.line)
    result: dict = {"thresholds": thresholds, "baseline": baseline.name if baseline else None}
    for number, key in enumerate(("test", "corrections"), start=1):
        samples = folder_samples(context, key)
        if not samples:
            result[key] = None
            context.log(f"{key}: no images")
            continue
        result[key] = {
            "candidate": evaluate_at_thresholds(candidate, samples, **thresholds),
            "active": evaluate_at_thresholds(active, samples, **thresholds) if active else None,
        }
        for who in ("candidate", "active"):
            if result[key][who]:
                context.log(f"{key}, {who}: {services.describe_metrics(result[key][who])}")
        context.progress(number / 2)
    return result
