"""The Celery task that runs one pipeline step ("ml.run_pipeline_step"), and the signature
of one link of a run's chain.

It lives beside the steps, not in ml.tasks, so that imports go one way:
ml.tasks -> ml.pipeline.runner -> ml.pipeline.step_task -> ml.pipeline.steps. The runner
builds chains from this task object (never from its name); neither this module nor the
steps import the runner or ml.tasks. ml.tasks re-exports the task.

Pipeline steps go to the training queue, so a long training never holds up an inference
worker: run `celery -A loupe worker -Q training --concurrency 1` beside the inference workers.
"""

from celery import shared_task

from loupe.common.time_limits import time_limits
from ml.pipeline.steps import StepFailed, run_step

TRAINING_QUEUE = "training"


@shared_task(
    name="ml.run_pipeline_step",
    # Acked on receipt: a step runs for minutes, longer than the broker's visibility timeout,
    # so a late ack would have Redis hand it to a second worker mid-training. A step whose
    # worker died is taken over by a retry of its run (ml.pipeline.runner.retry_run).
    acks_late=False,
    throws=(StepFailed,),
    **time_limits("training"),
)
def run_pipeline_step_task(run_id: int, step_name: str) -> None:
    run_step(run_id=run_id, name=step_name)


def step_signature(run_id: int, step_name: str):
    """One link of a run's chain, bound for the training queue."""
    return run_pipeline_step_task.si(run_id, step_name).set(queue=TRAINING_QUEUE)
