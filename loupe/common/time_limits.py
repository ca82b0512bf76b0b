"""Celery time limits per kind of task, and what a task records when it reaches its soft limit.

The limits come from settings.LOUPE_TASK_TIME_LIMITS (read from the environment); each task
declares its kind where it is defined: `@shared_task(..., **time_limits("datasets"))`. They are
read when the task module is imported, so a worker takes them from its own environment.
"""

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings


def time_limits(kind: str) -> dict:
    """Celery task options for a kind of task: "inference", "datasets" or "training"."""
    soft, hard = settings.LOUPE_TASK_TIME_LIMITS[kind]
    return {"soft_time_limit": soft, "time_limit": hard}


def failure_message(error: BaseException, *, kind: str) -> str:
    """The reason a failed run records: the time limit and the variable that sets it when the
    soft limit stopped it, otherwise the error's own message."""
    if isinstance(error, SoftTimeLimitExceeded):
        soft, _ = settings.LOUPE_TASK_TIME_LIMITS[kind]
        return f"stopped at its time limit of {soft} s (LOUPE_{kind.upper()}_SOFT_TIME_LIMIT_S)"
    return str(error) or type(error).__name__
