"""Starting exports and imports: record the run (services), then send it to a worker
(tasks). Above both, so services never import tasks."""

from django.db import transaction

from datasets import services, tasks
from datasets.models import DatasetExport, DatasetImport, DatasetVersion


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
