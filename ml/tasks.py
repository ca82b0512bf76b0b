"""Celery entry points of the model registry and the retraining pipeline.

Pipeline steps go to the training queue, so a long training never holds up an inference
worker: run `celery -A loupe worker -Q training --concurrency 1` beside the inference workers.
"""

import logging

from celery import shared_task

from ml import pipeline

logger = logging.getLogger(__name__)

TRAINING_QUEUE = "training"


@shared_task(
    name="ml.run_pipeline_step",
    # Acked on receipt: a step runs for minutes, longer than the broker's visibility timeout,
    # so a late ack would have Redis hand it to a second worker mid-training. A step whose
    # worker died is taken over by a retry of its run (pipeline.retry_run).
    acks_late=False,
    throws=(pipeline.StepFailed,),
)
def run_pipeline_step_task(run_id: int, step_name: str) -> None:
    pipeline.run_step(run_id=run_id, name=step_name)


def step_signature(run_id: int, step_name: str):
    """One link of a run's chain, bound for the training queue."""
    return run_pipeline_step_task.si(run_id, step_name).set(queue=TRAINING_QUEUE)


@shared_task(name="ml.check_retraining_policy")
def check_retraining_policy_task(line_id: int) -> None:
    from inspection.models import Line

    line = Line.objects.filter(pk=line_id).first()
    if line is not None:
        pipeline.start_run_if_due(line=line)


def enqueue_policy_check(line_id: int) -> None:
    """Ask whether the line's corrections call for a run. A correction is saved whatever
    happens here: a broker that cannot be reached only delays the check to the next one."""
    try:
        check_retraining_policy_task.apply_async((line_id,), queue=TRAINING_QUEUE)
    except Exception:
        logger.exception("line %s: could not send the retraining policy check", line_id)
