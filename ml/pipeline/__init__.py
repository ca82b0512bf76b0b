"""The retraining pipeline: a Celery chain of steps, each recorded in a PipelineStep.

    ingest -> statistics -> transform -> tune -> train -> evaluate -> infrastructure -> register

Modules, each importing only those below it (never one above, so there is no cycle):

    ml.tasks             Celery entry points: the policy check; re-exports the step task
    runner               starting and retrying runs, the Celery chain, the policy trigger
    cleanup              failing runs whose worker died; removing run folders no one reads
    step_task            the Celery task that runs one step ("ml.run_pipeline_step")
    steps                the step order; running one step and recording its outcome
    data_steps           ingest, statistics, transform
    model_steps          tune, train, evaluate
    release_steps        infrastructure, register
    context              StepContext, StepError and the helpers the step bodies share

The steps and the runner call ml.services; ml.services imports neither this package nor
ml.tasks (services never import tasks), and no step body imports a Celery task.

torch, and the ml.engine modules that load it, are imported inside the step functions that
use them: the web process imports this package to start runs and never loads torch.

Callers import from here (`from ml import pipeline`); the names below are the public API.
"""

from ml.pipeline.cleanup import clean_up_runs
from ml.pipeline.context import StepContext, StepError, load_version, run_dir
from ml.pipeline.data_steps import ingest, statistics, transform
from ml.pipeline.model_steps import evaluate, selection_score, train, tune
from ml.pipeline.release_steps import infrastructure, register
from ml.pipeline.runner import (
    DEFAULT_RUN_CONFIG,
    corrections_since,
    is_retryable,
    retry_run,
    send_steps,
    start_run,
    start_run_if_due,
)
from ml.pipeline.steps import STALE_AFTER, STEP_FUNCTIONS, STEPS, StepFailed, run_step

__all__ = [
    "DEFAULT_RUN_CONFIG",
    "STALE_AFTER",
    "STEPS",
    "STEP_FUNCTIONS",
    "StepContext",
    "StepError",
    "StepFailed",
    "clean_up_runs",
    "corrections_since",
    "evaluate",
    "infrastructure",
    "ingest",
    "is_retryable",
    "load_version",
    "register",
    "retry_run",
    "run_dir",
    "run_step",
    "selection_score",
    "send_steps",
    "start_run",
    "start_run_if_due",
    "statistics",
    "train",
    "transform",
    "tune",
]
