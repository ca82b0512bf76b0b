"""The retraining pipeline: a Celery chain of steps, each recorded in a PipelineStep.

    ingest -> statistics -> transform -> tune -> train -> evaluate -> infrastructure -> register

Each step is one task (ml.tasks.run_pipeline_step_task) that calls run_step(); the chain
stops at the first step that fails. A step reads what it needs from the artifacts the steps
before it recorded (ids, figures, folders under the run's directory), so a failed run is
retried by a chain that starts at the failed step and redoes nothing before it.
"""

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F
from django.utils import timezone

from inspection.errors import InvalidInput, LoupeError
from ml import services
from ml.errors import ActiveModelChanged, RunInProgress, RunNotRetryable
from ml.gate import GateRules, judge
from ml.models import (
    MlopsLevel,
    ModelVersion,
    PipelineRun,
    PipelineStep,
    RunState,
    RunTrigger,
    StepState,
)

logger = logging.getLogger(__name__)

STEPS = (
    "ingest",
    "statistics",
    "transform",
    "tune",
    "train",
    "evaluate",
    "infrastructure",
    "register",
)
DEFAULT_RUN_CONFIG = {
    "epochs": 12,
    "batch_size": 32,
    "input_size": 128,  # for a model from scratch; a warm start keeps its parent's
    "warm_start": True,
    "learning_rates": [0.001, 0.003],
    "augmentations": [0.1, 0.3],
    "trial_epochs": 2,
    "tune_budget_s": 120,
    "train_budget_s": 900,
    "seed": 0,
    "latency_runs": 20,
    # a corrected training image is shown this many times per epoch: corrections are where
    # the active model was wrong, the examples the loop exists for
    "correction_repeats": 2,
}
FLUSH_EVERY_S = 1.0
MAX_LOG_LINES = 2000
# A running step that has not logged for this long lost its worker (steps are acked early,
# so a killed worker's step is not redelivered): its run may be retried.
STALE_AFTER = timedelta(minutes=15)
CHANNELS = {"1": 1, "L": 1, "LA": 2, "P": 3, "RGB": 3, "RGBA": 4}


class StepFailed(Exception):
    """A step failed and was recorded as failed; the chain stops here."""


class StepError(Exception):
    """A failure the step explains itself (a schema break, a budget missed): its message is
    shown as it is, without a traceback."""


def run_dir(run_id: int) -> Path:
    return Path(settings.LOUPE_MODEL_DIR) / "runs" / str(run_id)


# Starting, retrying, the policy --------------------------------------------------------------


def start_run(
    *,
    line,
    trigger: str = RunTrigger.MANUAL,
    started_by=None,
    config: dict | None = None,
    dataset_version=None,
) -> PipelineRun:
    """Record a run of the line's pipeline and send its chain after commit.

    The run trains on `dataset_version`, or on a version the ingest step freezes from every
    labeled inspection of the line. config overrides the line policy's run_config, which
    overrides DEFAULT_RUN_CONFIG. Raises RunInProgress while the line has a run pending or
    running, InvalidInput on an unknown config key.
    """
    from inspection.models import Line

    policy = services.policy_for(line)
    merged = {**DEFAULT_RUN_CONFIG, **policy.run_config, **(config or {})}
    if unknown := set(merged) - set(DEFAULT_RUN_CONFIG):
        raise InvalidInput(f"unknown pipeline setting {', '.join(sorted(unknown))}")
    line = Line.objects.select_related("active_model").get(pk=line.pk)
    try:
        with transaction.atomic():
            run = PipelineRun.objects.create(
                line=line,
                trigger=trigger,
                started_by=started_by,
                config=merged,
                baseline=line.active_model,
                dataset_version=dataset_version,
            )
            PipelineStep.objects.bulk_create(
                PipelineStep(run=run, name=name, position=i) for i, name in enumerate(STEPS)
            )
    except IntegrityError:
        raise RunInProgress(f"{line.name} has a retraining run in progress") from None
    transaction.on_commit(lambda: send_steps(run.pk, STEPS))
    return run


def send_steps(run_id: int, names) -> None:
    """Send the chain of `names`; a broker that cannot be reached fails the run visibly."""
    from celery import chain

    from ml.tasks import step_signature

    workflow = chain(step_signature(run_id, name) for name in names)
    try:
        workflow.apply_async()
    except StepFailed:
        # only with eager tasks (embedded mode, tests): the chain ran here and stopped at a
        # step whose failure is already recorded
        pass
    except Exception as exc:
        logger.exception("run %s: could not send its steps", run_id)
        PipelineRun.objects.filter(pk=run_id, state=RunState.PENDING).update(
            state=RunState.FAILED,
            error=f"could not reach the workers: {exc}",
            finished_at=timezone.now(),
        )


def is_retryable(run: PipelineRun) -> bool:
    if run.state == RunState.FAILED:
        return True
    if run.state != RunState.RUNNING:
        return False
    step = run.steps.filter(state=StepState.RUNNING).first()
    return (
        step is not None and (step.heartbeat_at or step.started_at) < timezone.now() - STALE_AFTER
    )


def retry_run(*, run: PipelineRun) -> PipelineRun:
    """Run a failed run again from its first step that did not succeed; the steps before it
    keep their results and are not redone. Also takes over a run whose worker died (no word
    from its running step for STALE_AFTER). Raises RunNotRetryable otherwise, RunInProgress
    when the line has started another run meanwhile."""
    run = PipelineRun.objects.get(pk=run.pk)
    if not is_retryable(run):
        raise RunNotRetryable(f"run {run.pk} is {run.state}: only a failed run can be retried")
    names = [s.name for s in run.steps.order_by("position") if s.state != StepState.SUCCEEDED]
    try:
        with transaction.atomic():
            won = PipelineRun.objects.filter(pk=run.pk, state=run.state).update(
                state=RunState.PENDING, error="", finished_at=None
            )
            if won != 1:
                raise RunNotRetryable(f"run {run.pk} changed meanwhile: look again")
            PipelineStep.objects.filter(run=run, name__in=names).update(
                state=StepState.PENDING, progress=0.0, error="", finished_at=None
            )
    except IntegrityError:
        raise RunInProgress(f"{run.line.name} has another retraining run in progress") from None
    transaction.on_commit(lambda: send_steps(run.pk, names))
    run.refresh_from_db()
    return run


def corrections_since(line, since) -> int:
    """Inspections of the line corrected after `since` (every inspection when None)."""
    from labeling.models import AnnotationRevision, LabelSource

    corrections = AnnotationRevision.objects.filter(
        inspection__line=line, source=LabelSource.CORRECTION
    )
    if since is not None:
        corrections = corrections.filter(created_at__gt=since)
    return corrections.values("inspection_id").distinct().count()


def start_run_if_due(*, line) -> PipelineRun | None:
    """The assisted and automatic levels' trigger: start a run once the line has
    retrain_every_corrections corrected inspections since its last run started (before any
    run: since its active model was registered). Returns the run, or None when none is due
    or one is in progress; safe to call after every correction."""
    policy = services.policy_for(line)
    if policy.mlops_level == MlopsLevel.MANUAL:
        return None
    last = PipelineRun.objects.filter(line=line).order_by("-created_at").first()
    if last is not None and last.state in (RunState.PENDING, RunState.RUNNING):
        return None
    if last is not None:
        since = last.created_at
    else:
        active = ModelVersion.objects.filter(lines=line).first()
        since = active.created_at if active else None
    if corrections_since(line, since) < policy.retrain_every_corrections:
        return None
    try:
        return start_run(line=line, trigger=RunTrigger.POLICY)
    except RunInProgress:
        return None


# Running one step ---------------------------------------------------------------------------


class StepContext:
    """What a step function gets: the run, the earlier steps' artifacts, a log and a progress
    bar that reach the database at most every FLUSH_EVERY_S (the run page polls them)."""

    def __init__(self, run: PipelineRun, step: PipelineStep, earlier: dict[str, dict]):
        self.run = run
        self.step = step
        self.earlier = earlier
        self.config = run.config
        self.work_dir = run_dir(run.pk)
        self._lines: list[str] = []
        self._progress = 0.0
        self._flushed = time.monotonic()

    def log(self, text: str) -> None:
        self._lines.append(f"{timezone.now():%H:%M:%S} {text}")
        self._lines = self._lines[-MAX_LOG_LINES:]
        self._maybe_flush()

    def progress(self, fraction: float) -> None:
        self._progress = min(max(float(fraction), 0.0), 1.0)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        PipelineStep.objects.filter(pk=self.step.pk).update(
            log="\n".join(self._lines), progress=self._progress, heartbeat_at=timezone.now()
        )
        self._flushed = time.monotonic()


def run_step(*, run_id: int, name: str) -> None:
    """Run one step of a run and record its state, duration, log and artifacts.

    Raises StepFailed when the step fails (recorded, with the run marked failed), so the
    chain stops. A duplicated message for a step that already succeeded does nothing.
    """
    now = timezone.now()
    claimed = PipelineStep.objects.filter(run_id=run_id, name=name, state=StepState.PENDING).update(
        state=StepState.RUNNING,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        attempts=F("attempts") + 1,
        progress=0.0,
        log="",
        error="",
        artifacts={},
    )
    if claimed != 1:
        step = PipelineStep.objects.filter(run_id=run_id, name=name).first()
        if step is not None and step.state == StepState.SUCCEEDED:
            return
        raise StepFailed(f"step {name} of run {run_id} is not waiting to run")
    PipelineRun.objects.filter(pk=run_id, state=RunState.PENDING).update(state=RunState.RUNNING)
    run = PipelineRun.objects.select_related("line", "baseline", "dataset_version").get(pk=run_id)
    step = run.steps.get(name=name)
    earlier = {
        s.name: s.artifacts
        for s in run.steps.filter(position__lt=step.position, state=StepState.SUCCEEDED)
    }
    context = StepContext(run, step, earlier)
    try:
        artifacts = STEP_FUNCTIONS[name](context)
    except Exception as exc:
        if isinstance(exc, StepError | LoupeError):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
            context.log(traceback.format_exc())
        context.log(f"failed: {message}")
        context.flush()
        finished = timezone.now()
        PipelineStep.objects.filter(pk=step.pk).update(
            state=StepState.FAILED, error=message, finished_at=finished
        )
        PipelineRun.objects.filter(pk=run_id).update(
            state=RunState.FAILED, error=f"{name}: {message}", finished_at=finished
        )
        raise StepFailed(f"run {run_id}, {name}: {message}") from exc
    context.progress(1.0)
    context.flush()
    finished = timezone.now()
    PipelineStep.objects.filter(pk=step.pk).update(
        state=StepState.SUCCEEDED, artifacts=artifacts, finished_at=finished
    )
    if step.position == len(STEPS) - 1:
        PipelineRun.objects.filter(pk=run_id).update(state=RunState.SUCCEEDED, finished_at=finished)


# The steps ----------------------------------------------------------------------------------


def _correction_items(run: PipelineRun, version):
    """Items corrected after the baseline's training data was frozen, outside the train split:
    what the active model got wrong since, and the candidate did not train on."""
    from datasets.models import Split
    from labeling.models import LabelSource

    baseline = run.baseline
    if baseline is None:
        return version.items.none()
    since = baseline.dataset_version.created_at if baseline.dataset_version else baseline.created_at
    return version.items.filter(
        source=LabelSource.CORRECTION, revision__created_at__gt=since
    ).exclude(split=Split.TRAIN)


def _dataset_version(context: StepContext):
    from datasets.models import DatasetVersion

    return DatasetVersion.objects.get(pk=context.earlier["ingest"]["dataset_version"])


def ingest(context: StepContext) -> dict:
    from datasets.services import freeze_dataset

    run = context.run
    version, created = run.dataset_version, False
    if version is None:
        version, created = freeze_dataset(filters={"lines": [run.line.name]}, user=run.started_by)
        PipelineRun.objects.filter(pk=run.pk).update(dataset_version=version)
    splits = dict(version.items.values_list("split").annotate(n=Count("pk")).order_by())
    corrections = _correction_items(run, version).count()
    context.log(
        f"dataset version {version.name} ({'frozen now' if created else 'existing'}): "
        f"{version.item_count} images, splits {splits}, {corrections} held-out corrections "
        f"since {run.baseline or 'no active model'}"
    )
    return {
        "dataset_version": version.pk,
        "name": version.name,
        "version_hash": version.version_hash,
        "frozen_now": created,
        "images": version.item_count,
        "splits": splits,
        "corrections": corrections,
        "baseline": run.baseline.name if run.baseline else None,
    }


def _reference_schema(baseline: ModelVersion | None) -> dict | None:
    """The image schema the active model was trained on, when a pipeline run trained it."""
    if baseline is None:
        return None
    step = PipelineStep.objects.filter(
        run__candidate=baseline, name="statistics", state=StepState.SUCCEEDED
    ).first()
    return step.artifacts.get("schema") if step else None


def statistics(context: StepContext) -> dict:
    """Counts per split and class, image sizes and channels; a schema break fails the run
    with a message that names it."""
    from PIL import Image

    from inspection.storage import image_path

    version = _dataset_version(context)
    line = context.run.line
    known = set(line.defect_classes)
    splits: dict[str, Counter] = {}
    classes: dict[str, Counter] = {}
    sizes, channels = Counter(), Counter()
    missing, unreadable, no_boxes, boxes_on_ok, unknown, outside = [], [], [], [], set(), []
    items = version.items.values_list(
        "inspection_id", "split", "image", "width", "height", "image_label", "boxes"
    )
    for inspection_id, split, image, width, height, image_label, boxes in items.iterator():
        try:
            with Image.open(image_path(image)) as opened:
                mode, size = opened.mode, opened.size
        except FileNotFoundError:
            missing.append(inspection_id)
            continue
        except OSError:
            unreadable.append(inspection_id)
            continue
        sizes[f"{size[0]}x{size[1]}"] += 1
        channels[CHANNELS.get(mode, len(mode))] += 1
        splits.setdefault(split, Counter())[image_label] += 1
        if image_label == "defective" and not boxes:
            no_boxes.append(inspection_id)
        if image_label == "ok" and boxes:
            boxes_on_ok.append(inspection_id)
        for box in boxes:
            classes.setdefault(split, Counter())[box["label"]] += 1
            if box["label"] not in known:
                unknown.add(box["label"])
            if not (0 <= box["x0"] < box["x1"] <= width and 0 <= box["y0"] < box["y1"] <= height):
                outside.append(inspection_id)

    breaks = []
    if missing:
        breaks.append(f"images: {len(missing)} stored images are missing (inspection {missing[0]})")
    if unreadable:
        breaks.append(f"images: {len(unreadable)} cannot be read (inspection {unreadable[0]})")
    reference = _reference_schema(context.run.baseline)
    if len(sizes) > 1:
        breaks.append(f"image size: one version mixes sizes {dict(sizes)}")
    if len(channels) > 1:
        breaks.append(f"channels: one version mixes channel counts {dict(channels)}")
    schema = {
        "size": [int(v) for v in next(iter(sizes)).split("x")] if len(sizes) == 1 else None,
        "channels": next(iter(channels)) if len(channels) == 1 else None,
    }
    if reference and len(sizes) == 1 and schema["size"] != reference["size"]:
        breaks.append(
            f"image size: {next(iter(sizes))}, but {context.run.baseline} was trained on "
            f"{reference['size'][0]}x{reference['size'][1]}"
        )
    if reference and len(channels) == 1 and schema["channels"] != reference["channels"]:
        breaks.append(
            f"channels: {schema['channels']}, but {context.run.baseline} was trained on "
            f"{reference['channels']}"
        )
    if no_boxes:
        breaks.append(f"labels: {len(no_boxes)} defective images without a box ({no_boxes[0]})")
    if boxes_on_ok:
        breaks.append(f"labels: {len(boxes_on_ok)} OK images with boxes ({boxes_on_ok[0]})")
    if unknown:
        breaks.append(f"labels: classes {', '.join(sorted(unknown))} are not the line's classes")
    if outside:
        breaks.append(f"labels: {len(outside)} boxes outside their image ({outside[0]})")
    for split in ("train", "test"):
        counts = splits.get(split, Counter())
        if not counts["ok"] or not counts["defective"]:
            breaks.append(
                f"labels: the {split} split needs defective and OK images, has "
                f"{counts['defective']} defective and {counts['ok']} OK"
            )
    if breaks:
        raise StepError("schema break: " + "; ".join(breaks))

    warnings = [
        f"class {name} has no training image"
        for name in line.defect_classes
        if not classes.get("train", Counter())[name]
    ]
    for warning in warnings:
        context.log(f"warning: {warning}")
    result = {
        "splits": {split: dict(c) for split, c in sorted(splits.items())},
        "classes": {split: dict(c) for split, c in sorted(classes.items())},
        "sizes": dict(sizes),
        "channels": {str(k): v for k, v in channels.items()},
        "schema": schema,
        "reference_schema": reference,
        "warnings": warnings,
    }
    context.log(f"statistics: {json.dumps(result['splits'])}, classes {result['classes']}")
    return result


def transform(context: StepContext) -> dict:
    """Write the splits and the held-out corrections as COCO folders the engine reads."""
    from labeling.models import LabelSource
    from ml.engine.generator import DEFECT_CLASSES
    from ml.training_data import write_coco_folder

    version = _dataset_version(context)
    labels = {label for c in context.earlier["statistics"]["classes"].values() for label in c}
    classes = list(DEFECT_CLASSES) + sorted(labels - set(DEFECT_CLASSES))
    sets = {
        "train": version.items.filter(split="train"),
        "val": version.items.filter(split="val"),
        "test": version.items.filter(split="test"),
        "corrections": _correction_items(context.run, version),
    }
    folders, counts = {}, {}
    for number, (key, items) in enumerate(sets.items(), start=1):
        folder = context.work_dir / key
        counts[key] = write_coco_folder(items.order_by("pk").iterator(), folder, classes=classes)
        folders[key] = str(folder.relative_to(settings.LOUPE_MODEL_DIR))
        context.log(f"{key}: {counts[key]} images in {folder}")
        context.progress(number / len(sets))
    corrected = sorted(
        Path(name).name
        for name in sets["train"]
        .filter(source=LabelSource.CORRECTION)
        .values_list("image", flat=True)
    )
    context.log(f"{len(corrected)} training images are corrections")
    return {
        "folders": folders,
        "counts": counts,
        "classes": classes,
        "train_corrections": corrected,
    }


def _samples(context: StepContext, key: str):
    from ml.engine.dataset import load_coco_folder

    folder = Path(settings.LOUPE_MODEL_DIR) / context.earlier["transform"]["folders"][key]
    return load_coco_folder(folder)


def _training_samples(context: StepContext):
    """The train split, with each corrected image repeated correction_repeats times."""
    samples = _samples(context, "train")
    corrected = set(context.earlier["transform"]["train_corrections"])
    extra = [s for s in samples if s.path.name in corrected]
    return samples + extra * max(context.config["correction_repeats"] - 1, 0)


def _prepare_torch() -> str:
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    return "cuda" if torch.cuda.is_available() else "cpu"


def _load_version(version: ModelVersion, device: str = "cpu"):
    from ml.engine.artifact import load_artifact
    from ml.inference import artifact_path

    return load_artifact(
        artifact_path(version), device=device, expected_sha256=version.artifact_sha256
    )


def _warm_start(context: StepContext, samples, device: str):
    """The active model to start from when the config asks for it, else None (a model from
    scratch). A class the active model lacks gets a new output (ml.engine.retrain.fit)."""
    baseline = context.run.baseline
    if not context.config["warm_start"] or baseline is None:
        return None
    model = _load_version(baseline, device)
    new = {box.label for sample in samples for box in sample.boxes} - set(model.classes)
    if new:
        context.log(f"{baseline} has no output for {', '.join(sorted(new))}: one each is added")
    return model


def _fit_config(config: dict, **changes):
    from ml.engine.retrain import FitConfig

    values = {
        "epochs": config["epochs"],
        "batch_size": config["batch_size"],
        "learning_rate": config["learning_rates"][0],
        "augmentation": config["augmentations"][0],
        "seed": config["seed"],
        "input_size": config["input_size"],
        "time_budget_s": config["train_budget_s"],
    }
    return FitConfig(**{**values, **changes})


def _thresholds(line) -> dict:
    return {"accept_threshold": line.accept_threshold, "reject_threshold": line.reject_threshold}


def selection_score(figures: dict) -> float:
    """How tuning ranks trials on the val split: the mean of AUROC and F1 at the reject
    threshold (F1 alone when the split lacks one of the two labels)."""
    f1 = figures["reject"]["f1"]
    return (figures["auroc"] + f1) / 2 if "auroc" in figures else f1


def tune(context: StepContext) -> dict:
    from ml.engine.evaluate import evaluate_at_thresholds
    from ml.engine.retrain import best_trial
    from ml.engine.retrain import tune as run_trials

    config = context.config
    device = _prepare_torch()
    train, val = _training_samples(context), _samples(context, "val")
    init = _warm_start(context, train, device)
    grid = len(config["learning_rates"]) * len(config["augmentations"])
    if not val:
        context.log("no validation images: tuning skipped, the first settings are used")
        best = {
            "learning_rate": config["learning_rates"][0],
            "augmentation": config["augmentations"][0],
        }
        return {"trials": [], "best": best, "skipped": "no validation images"}
    thresholds = _thresholds(context.run.line)
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
    from ml.engine.retrain import fit, save_model

    device = _prepare_torch()
    samples = _training_samples(context)
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
    from ml.engine.evaluate import evaluate_at_thresholds

    device = _prepare_torch()
    trained = context.earlier["train"]
    candidate = load_artifact(
        Path(settings.LOUPE_MODEL_DIR) / trained["artifact"],
        device=device,
        expected_sha256=trained["sha256"],
    )
    baseline = context.run.baseline
    active = _load_version(baseline, device) if baseline else None
    thresholds = _thresholds(context.run.line)
    result: dict = {"thresholds": thresholds, "baseline": baseline.name if baseline else None}
    for number, key in enumerate(("test", "corrections"), start=1):
        samples = _samples(context, key)
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


def infrastructure(context: StepContext) -> dict:
    """Load the artifact in a fresh process and hold its latency and memory to the budgets."""
    trained = context.earlier["train"]
    line = context.run.line
    policy = services.policy_for(line)
    folder = Path(settings.LOUPE_MODEL_DIR) / context.earlier["transform"]["folders"]["test"]
    image = next((folder / "images").iterdir())
    command = [
        sys.executable,
        "-m",
        "ml.probe",
        str(Path(settings.LOUPE_MODEL_DIR) / trained["artifact"]),
        "--sha256",
        trained["sha256"],
        "--image",
        str(image),
        "--runs",
        str(context.config["latency_runs"]),
        "--threads",
        str(settings.LOUPE_TORCH_THREADS),
    ]
    probe = subprocess.run(
        command, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=600
    )
    if probe.returncode != 0:
        raise StepError(f"the artifact does not run in a fresh process: {probe.stderr[-2000:]}")
    figures = json.loads(probe.stdout.strip().splitlines()[-1])
    context.log(f"fresh process: {figures}")
    over = []
    if figures["latency_ms_p95"] > line.latency_budget_ms:
        over.append(
            f"latency p95 {figures['latency_ms_p95']:.1f} ms exceeds the line's budget of "
            f"{line.latency_budget_ms} ms"
        )
    if figures["peak_memory_mb"] > policy.memory_budget_mb:
        over.append(
            f"peak memory {figures['peak_memory_mb']:.0f} MB exceeds the budget of "
            f"{policy.memory_budget_mb} MB"
        )
    if over:
        raise StepError("over budget: " + "; ".join(over))
    return {
        **figures,
        "latency_budget_ms": line.latency_budget_ms,
        "memory_budget_mb": policy.memory_budget_mb,
    }


def register(context: StepContext) -> dict:
    """Register the candidate with its lineage and figures; let the gate judge it, and at the
    automatic level promote it when the gate passes."""
    run = context.run
    trained = context.earlier["train"]
    evaluation = context.earlier["evaluate"]
    # the version and its link to the run commit together, so a retried step finds it here
    with transaction.atomic():
        version = PipelineRun.objects.select_for_update().get(pk=run.pk).candidate
        if version is None:
            dataset = _dataset_version(context)
            version = services.register_model_version(
                artifact=Path(settings.LOUPE_MODEL_DIR) / trained["artifact"],
                metrics=evaluation["test"]["candidate"],
                hyperparameters=trained["hyperparameters"],
                train_seconds=trained["train_seconds"],
                training_data=f"dataset {dataset.name} ({dataset.version_hash[:12]})",
                line=run.line,
                dataset_version=dataset,
                parent=run.baseline if trained["warm_start_from"] else None,
            )
            PipelineRun.objects.filter(pk=run.pk).update(candidate=version)
    policy = services.policy_for(run.line)
    rules = GateRules(policy.gate_margin, policy.max_class_recall_drop)
    report = judge(evaluation, rules)
    gate = {
        **report.to_dict(),
        "rules": asdict(rules),
        "mlops_level": policy.mlops_level,
        "run": run.pk,
    }
    ModelVersion.objects.filter(pk=version.pk).update(evaluation={**evaluation, "gate": gate})
    for check in report.checks:
        context.log(f"gate {check.outcome}: {check.name}: {check.detail}")
    promoted = False
    if policy.mlops_level == MlopsLevel.AUTOMATIC and report.passed:
        try:
            services.promote_model_version(
                model_version=version,
                changed_by="gate",
                expected_active=run.baseline,
                reason=f"gate passed in pipeline run {run.pk}",
            )
            promoted = True
            context.log(f"promoted {version.name}: the gate passed")
        except ActiveModelChanged as exc:
            context.log(f"not promoted: {exc}")
    else:
        context.log(f"{version.name} waits for a supervisor")
    return {"model_version": version.pk, "name": version.name, "gate": gate, "promoted": promoted}


STEP_FUNCTIONS: dict[str, Callable[[StepContext], dict]] = {
    "ingest": ingest,
    "statistics": statistics,
    "transform": transform,
    "tune": tune,
    "train": train,
    "evaluate": evaluate,
    "infrastructure": infrastructure,
    "register": register,
}
