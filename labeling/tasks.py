import logging

from celery import shared_task
from django.conf import settings

from inspection.models import Line
from labeling import queue, review_labels
from loupe.common.time_limits import time_limits

logger = logging.getLogger(__name__)


@shared_task(name="labeling.label_final_decisions", **time_limits("inference"))
def label_final_decisions_task() -> int:
    """Periodic (loupe.periodic): final review decisions become labels."""
    return review_labels.label_final_decisions()


# Scoring a pool with a model takes seconds: these run on the datasets queue (loupe.periodic,
# send_refresh), never on the inference queue that stations wait on.
@shared_task(
    name="labeling.refresh_line_queue",
    acks_late=False,
    **time_limits("datasets"),
)
def refresh_line_queue_task(line_id: int) -> dict:
    return queue.refresh_line_queue(Line.objects.get(pk=line_id))


@shared_task(
    name="labeling.refresh_labeling_queues",
    acks_late=False,
    **time_limits("datasets"),
)
def refresh_labeling_queues_task() -> dict:
    """Periodic (loupe.periodic): every line's labeling queue, one line after the other; a
    line that fails is logged and the others still get theirs."""
    results = {}
    for line in Line.objects.order_by("pk"):
        try:
            results[line.name] = queue.refresh_line_queue(line)
        except Exception:  # noqa: BLE001 - one line's bad model must not starve the others
            logger.exception("labeling queue refresh failed for line %s", line.name)
            results[line.name] = {"error": True}
    return results


@shared_task(name="labeling.sync_queue_sources", acks_late=False, **time_limits("datasets"))
def sync_queue_sources_task() -> dict:
    """Periodic (loupe.periodic): every line's flagged items onto its queue, every minute."""
    return {line.name: queue.sync_line_sources(line) for line in Line.objects.order_by("pk")}


def send_refresh(line_id: int) -> None:
    """Ask a datasets worker to refresh one line's queue now (the page's button). Raises the
    broker's error when it cannot be reached."""
    # the setting datasets.limits.datasets_queue reads (labeling sits below datasets)
    refresh_line_queue_task.apply_async((line_id,), queue=settings.LOUPE_DATASETS_QUEUE)
