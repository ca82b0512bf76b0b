"""What a process that judges items does when it starts (an inference worker, or the web
process in embedded mode): route what a dead process left unrouted, and load the models."""

import logging
import threading
import time

logger = logging.getLogger(__name__)


def prepare_to_judge() -> None:
    from inspection.decisions import route_overdue_inspections
    from inspection.inference import warm_up_active_models

    # items a dead process left unrouted get their fail-safe before new ones arrive
    overdue = route_overdue_inspections()
    if overdue:
        logger.warning("routed %d overdue items to the fail-safe", overdue)
    warm_up_active_models()


def prepare_before_taking_items() -> None:
    """prepare_to_judge in this process, now; a failure is logged, never raised."""
    from django.db import connection

    try:
        prepare_to_judge()
    except Exception:  # a failed start-up chore must not take the process down
        logger.exception("start-up preparation failed")
    finally:
        connection.close()  # opened before the first task; tasks open their own


def prepare_in_background() -> threading.Thread:
    """prepare_to_judge in a daemon thread: the process takes items at once, and an item that
    arrives meanwhile waits for the loading model instead of loading it twice."""

    def run() -> None:
        from django.db import connection

        try:
            prepare_to_judge()
        except Exception:  # a failed start-up chore must not take the process down
            logger.exception("start-up preparation failed")
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=run, name="loupe-prepare", daemon=True)
    thread.start()
    return thread


def run_due_jobs(last_run: dict, *, now: float) -> list[str]:
    """Run, in this process, each periodic job whose interval has passed; return their names.
    A failing job is logged and tried again at its next interval."""
    from loupe.periodic import periodic_jobs

    ran = []
    for job in periodic_jobs():
        if now - last_run.get(job.task.name, float("-inf")) < job.every_s:
            continue
        last_run[job.task.name] = now
        try:
            job.task.apply()
        except Exception:  # a chore must not stop the others or the process
            logger.exception("periodic job %s failed", job.task.name)
        ran.append(job.task.name)
    return ran


def run_periodic_jobs_in_background(*, tick_s: float = 5.0) -> threading.Thread:
    """The embedded mode's Celery beat: loupe.periodic's jobs in a daemon thread."""

    def loop() -> None:
        from django.db import connection

        last_run: dict = {}
        while True:
            try:
                run_due_jobs(last_run, now=time.monotonic())
            finally:
                connection.close()
            time.sleep(tick_s)

    thread = threading.Thread(target=loop, name="loupe-periodic", daemon=True)
    thread.start()
    return thread
