"""The JSON shapes of versions, exports and imports, shared by the pages' status calls and
the API for scripts, so both answer the same."""

from django.urls import reverse

from datasets.models import DatasetExport, DatasetImport, DatasetVersion


def version_payload(version: DatasetVersion, *, api: bool = False) -> dict:
    return {
        "id": version.pk,
        "name": version.name,
        "version_hash": version.version_hash,
        "filters": version.filters,
        "classes": version.classes,
        "counts": version.counts,
        "item_count": version.item_count,
        "created_by": version.created_by.username if version.created_by else None,
        "created_at": version.created_at.isoformat(),
        "manifest_url": reverse(
            "datasets-api:manifest" if api else "datasets:manifest", args=[version.pk]
        ),
    }


def export_payload(export: DatasetExport, *, api: bool = False) -> dict:
    names = (
        ("datasets-api:export", "datasets-api:export-download")
        if api
        else (
            "datasets:export-status",
            "datasets:export-download",
        )
    )
    return {
        "id": export.pk,
        "version": export.version_id,
        "format": export.format,
        "state": export.state,
        "done": export.done,
        "total": export.total,
        "size_bytes": export.size_bytes,
        "error": export.error,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "status_url": reverse(names[0], args=[export.pk]),
        "removed_at": export.removed_at.isoformat() if export.removed_at else None,
        "download_url": reverse(names[1], args=[export.pk]) if export.is_downloadable else None,
    }


def import_payload(record: DatasetImport, *, api: bool = False) -> dict:
    return {
        "id": record.pk,
        "line": record.line.name,
        "format": record.format,
        "archive_name": record.archive_name,
        "state": record.state,
        "done": record.done,
        "total": record.total,
        "created_count": record.created_count,
        "error": record.error,
        "problem_count": record.problem_count,
        "problems": record.problems,
        "skipped": record.skipped,
        "created_at": record.created_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "status_url": reverse(
            "datasets-api:import" if api else "datasets:import-status", args=[record.pk]
        ),
    }
