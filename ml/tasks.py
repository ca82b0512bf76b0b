"""Celery entry points of the model registry and the retraining pipeline.

Imports go one way, with no cycle: this module -> ml.pipeline.runner -> ml.pipeline.step_task
-> ml.pipeline.steps. The task that runs a step ("ml.run_pipeline_step") is defined in
ml.pipeline.step_task, so that the runner can chain it without importing this module; it is
re-exported here with the queue it runs on. Nothing in ml.pipeline, and no service, imports
this module.
"""

import logging

from celery import shared_task

from inspection.models import Line
from loupe.common.time_limits import time_limits
from ml.pipeline.cleanup import clean_up_runs
from ml.pipeline.runner import start_run_if_due
from ml.pipeline.step_task import TRAINING_QUEUE, run_pipeline_step_task, step_signature

__all__ = [
    "TRAINING_QUEUE",
    "check_retraining_policy_task",
    "clean_up_runs_task",
    "enqueue_policy_check",
    "run_pipeline_step_task",
    "step_signature",
]

logger = logging.getLogger(__name__)


@shared_task(name="ml.check_retraining_policy", **time_limits("training"))
def check_retraining_policy_task(line_id: int) -> None:
    line = Line.objects.filter(pk=line_id).first()
    if line is not None:
        start_run_if_due(line=line)


def enqueue_policy_check(line_id: int) -> None:
    """Ask whether the line's corrections call for a run. A correction is saved whatever
    happens here: a broker that cannot be reached only delays the check to the next one."""
    try:
        check_retraining_policy_task.apply_async((line_id,), queue=TRAINING_QUEUE)
    except Exception:
        logger.exception("line %s: could not send the retraining policy check", line_id)


@shared_task(name="ml.clean_up_runs", acks_late=False)
def clean_up_runs_task() -> dict:
    return clean_up_runs()  # periodic (loupe.periodic)
