"""The steps in their order, and running one of them: claiming it, giving its body a
StepContext, and recording its state, log and artifacts, or its failure.

    ingest -> statistics -> transform -> tune -> train -> evaluate -> infrastructure -> register

A step reads what it needs from the artifacts the steps before it recorded, so a failed run
is retried from its failed step (see ml.pipeline.runner). This module imports the step
bodies, never the runner or a Celery task: ml.pipeline.step_task calls run_step.
"""

import shutil
import traceback
from collections.abc import Callable
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db.models import F
from django.utils import timezone

from loupe.common.errors import LoupeError
from loupe.common.time_limits import failure_message
from ml.models import PipelineRun, PipelineRunState, PipelineStep, StepState
from ml.pipeline.context import StepContext, StepError, run_dir
from ml.pipeline.data_steps import ingest, statistics, transform
from ml.pipeline.model_steps import evaluate, train, tune
from ml.pipeline.release_steps import infrastructure, register

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
STEPS = tuple(STEP_FUNCTIONS)
# A running step that has not logged for this long lost its worker (steps are acked early,
# so a killed worker's step is not redelivered): its run may be retried.
STALE_AFTER = timedelta(minutes=15)


class StepFailed(Exception):
    """A step failed and was recorded as failed; the chain stops here."""


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
    PipelineRun.objects.filter(pk=run_id, state=PipelineRunState.PENDING).update(
        state=PipelineRunState.RUNNING
    )
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
        elif isinstance(exc, SoftTimeLimitExceeded):
            message = failure_message(exc, kind="training")
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
            state=PipelineRunState.FAILED, error=f"{name}: {message}", finished_at=finished
        )
        raise StepFailed(f"run {run_id}, {name}: {message}") from exc
    context.progress(1.0)
    context.flush()
    finished = timezone.now()
    PipelineStep.objects.filter(pk=step.pk).update(
        state=StepState.SUCCEEDED, artifacts=artifacts, finished_at=finished
    )
    if step.position == len(STEPS) - 1:
        PipelineRun.objects.filter(pk=run_id).update(
            state=PipelineRunState.SUCCEEDED, finished_at=finished
        )
        # the copies of the dataset version the steps trained and evaluated on: the
        # candidate's artifact and the dataset version keep everything worth keeping
        shutil.rmtree(run_dir(run_id), ignore_errors=True)
