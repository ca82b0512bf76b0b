"""Celery entry points of exports and imports, on their own queue (limits.datasets_queue).

acks_late is off here, unlike the inference tasks: an export can outlast the broker's
visibility timeout, and Redis would then hand the still-running task to a second worker.
A worker killed mid-run leaves its export or import "running" with a stale heartbeat;
asking again starts a new one (services.STALE_AFTER), and no partial file is ever served.
"""

from celery import shared_task

from datasets import services


@shared_task(name="datasets.export", acks_late=False)
def export_dataset_task(export_id: int) -> None:
    services.run_export(export_id=export_id)  # only the first run of an export does anything


@shared_task(name="datasets.import", acks_late=False)
def import_dataset_task(import_id: int) -> None:
    services.run_import(import_id=import_id)  # only the first run of an import does anything
