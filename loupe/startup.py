"""What a process that judges items does when it starts (an inference worker, or the web
process in embedded mode): route what a dead process left unrouted, and load the models."""

import logging
import threading

logger = logging.getLogger(__name__)


def prepare_to_judge() -> None:
    from inspection.decisions import route_overdue_inspections
    from inspection.inference import warm_up_active_models

    # items a dead process left unrouted get their fail-safe before new ones arrive
    overdue = route_overdue_inspections()
    if overdue:
        logger.warning("routed %d overdue items to the fail-safe", overdue)
    warm_up_active_models()


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
