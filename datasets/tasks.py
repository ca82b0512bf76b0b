"""Celery entry points of exports and imports, on their own queue (limits.datasets_queue),
and of batch predictions, on theirs (batch.batch_queue).

acks_late is off here, unlike the inference tasks: an export can outlast the broker's
visibility timeout, and Redis would then hand the still-running task to a second worker.
A worker killed mid-run leaves its export or import "running" with a stale heartbeat;
asking again starts a new one (services.STALE_AFTER), and no partial file is ever served.
"""

import logging

from celery import shared_task
from django.db import transaction

from datasets import batch, limits, services
from loupe.common.cpu_priority import step_back_from_station_work
from loupe.common.time_limits import time_limits

logger = logging.getLogger(__name__)


@shared_task(name="datasets.export", acks_late=False, **time_limits("datasets"))
def export_dataset_task(export_id: int) -> None:
    services.run_export(export_id=export_id)  # only the first run of an export does anything


@shared_task(name="datasets.import", acks_late=False, **time_limits("datasets"))
def import_dataset_task(import_id: int) -> None:
    services.run_import(import_id=import_id)  # only the first run of an import does anything


@shared_task(name="datasets.clean_up_orphans", acks_late=False, **time_limits("datasets"))
def clean_up_orphans_task() -> dict:
    return services.clean_up_orphans()  # periodic (loupe.periodic)


@shared_task(name="datasets.remove_expired_exports", acks_late=False, **time_limits("datasets"))
def remove_expired_exports_task() -> int:
    return services.remove_expired_exports()  # periodic (loupe.periodic)


@shared_task(name="datasets.predict_batch", bind=True, acks_late=False, **time_limits("datasets"))
def predict_batch_task(self, batch_id: int) -> None:
    if not self.request.is_eager:
        _yield_to_station_work(self.app)
    batch.run_batch(batch_id=batch_id)  # only the first run of a batch does anything


def _yield_to_station_work(app) -> None:
    """A worker process that serves the batch queue alone steps back (loupe.common.cpu_priority)
    to batch.batch_nice; never one that also takes other queues (it would slow their tasks)."""
    if set(app.amqp.queues.consume_from) == {batch.batch_queue()}:
        step_back_from_station_work(nice=batch.batch_nice(), kind="batch")


def send_after_commit(task, object_id: int, model) -> None:
    """Send a task after commit; when the broker cannot be reached the run fails visibly
    instead of waiting in the queued state forever."""

    def send():
        try:
            task.apply_async((object_id,), queue=limits.datasets_queue())
        except Exception:
            logger.exception("could not send %s for %s %s", task.name, model.__name__, object_id)
            services.mark_unsent(model, object_id)

    transaction.on_commit(send)
