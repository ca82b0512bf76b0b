"""Starting and retrying pipeline runs: the run's rows, its Celery chain, and the policy
that starts runs on its own.

Each step is one ml.pipeline.step_task.run_pipeline_step_task; the chain stops at the first
step that fails. A failed run is retried by a chain that starts at its first step that did
not succeed and redoes nothing before it.

Imports go one way: ml.tasks (the policy check) -> this module -> ml.pipeline.step_task ->
ml.pipeline.steps. This module never imports ml.tasks, and nothing below it imports this.
"""

import logging

from celery import chain
from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection.models import Line
from labeling.models import AnnotationRevision, LabelSource
from loupe.common.errors import InvalidInput
from ml import services
from ml.errors import RunInProgress, RunNotRetryable
from ml.models import (
    MlopsLevel,
    ModelVersion,
    PipelineRun,
    PipelineRunState,
    PipelineStep,
    RunTrigger,
    StepState,
)
from ml.pipeline.context import run_dir
from ml.pipeline.step_task import step_signature
from ml.pipeline.steps import STALE_AFTER, STEPS, StepFailed

logger = logging.getLogger(__name__)

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
    policy = services.retraining_policy_for(line)
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
    workflow = chain(step_signature(run_id, name) for name in names)
    try:
        workflow.apply_async()
    except StepFailed:
        # only with eager tasks (embedded mode, tests): the chain ran here and stopped at a
        # step whose failure is already recorded
        pass
    except Exception as exc:
        logger.exception("run %s: could not send its steps", run_id)
        PipelineRun.objects.filter(pk=run_id, state=PipelineRunState.PENDING).update(
            state=PipelineRunState.FAILED,
            error=f"could not reach the workers: {exc}",
            finished_at=timezone.now(),
        )


def is_retryable(run: PipelineRun) -> bool:
    if run.state == PipelineRunState.FAILED:
        return True
    if run.state != PipelineRunState.RUNNING:
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
    steps = list(run.steps.order_by("position"))
    names = [s.name for s in steps if s.state != StepState.SUCCEEDED]
    transform = STEPS.index("transform")
    if names and STEPS.index(names[0]) > transform and not run_dir(run.pk).exists():
        # the run's folders were cleaned up (ml.pipeline.cleanup): write them again first
        names = [s.name for s in steps if s.position >= transform]
    try:
        with transaction.atomic():
            won = PipelineRun.objects.filter(pk=run.pk, state=run.state).update(
                state=PipelineRunState.PENDING, error="", finished_at=None
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
    policy = services.retraining_policy_for(line)
    if policy.mlops_level == MlopsLevel.MANUAL:
        return None
    last = PipelineRun.objects.filter(line=line).order_by("-created_at").first()
    if last is not None and last.state in (PipelineRunState.PENDING, PipelineRunState.RUNNING):
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
