"""Starting exports, imports and batch predictions: record the run (services), then send it
to a worker (tasks). Above both, so services never import tasks."""

import logging
from pathlib import Path

from django.db import transaction

from datasets import batch, services, tasks
from datasets.models import BatchPrediction, DatasetExport, DatasetImport, DatasetVersion

logger = logging.getLogger(__name__)


def start_export(*, version: DatasetVersion, fmt: str, user=None) -> tuple[DatasetExport, bool]:
    """Record an export of the version and send it to a worker; return (export, created).

    Safe to repeat: while an export of the same version and format is queued or running,
    that one is returned with created=False and nothing is sent. Raises InvalidInput on an
    unknown format.
    """
    with transaction.atomic():
        export, created = services.record_export(version=version, fmt=fmt, user=user)
        if created:
            tasks.send_after_commit(tasks.export_dataset_task, export.pk, DatasetExport)
    return export, created


def start_import(*, line, fmt: str, upload, user) -> DatasetImport:
    """Keep the uploaded zip and send its import to a worker. Raises InvalidInput on an
    unknown format, and ImportRefused when the archive is over the size limit (nothing kept)."""
    with transaction.atomic():
        record = services.record_import(line=line, fmt=fmt, upload=upload, user=user)
        tasks.send_after_commit(tasks.import_dataset_task, record.pk, DatasetImport)
    return record


def start_batch(*, line, archive: Path, source_name: str, user=None) -> BatchPrediction:
    """Record a batch prediction of the zip at `archive` (see batch.record_batch, which owns
    the file from here) and send it to the batch queue after commit. Raises BatchRefused."""
    with transaction.atomic():
        record = batch.record_batch(line=line, archive=archive, source_name=source_name, user=user)

        def send():
            try:
                tasks.predict_batch_task.apply_async((record.pk,), queue=batch.batch_queue())
            except Exception:
                logger.exception("could not send batch %s", record.pk)
                batch.mark_unsent(record.pk)

        transaction.on_commit(send)
    return record
