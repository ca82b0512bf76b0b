"""Dataset versions: freezing labeled inspections, exporting versions, importing archives.

Freezing is quick and synchronous; exports and imports are long file work, so these
services only record them and send a task (after commit), and the run_* services, called
by the tasks, do the work and keep the progress in the database for the pages to poll.
"""

import hashlib
import logging
import os
import uuid
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets import exporters, importers, limits
from datasets.models import (
    DatasetExport,
    DatasetImport,
    DatasetItem,
    DatasetVersion,
    ExportFormat,
    ExportImportState,
    ImportFormat,
    Split,
)
from inspection.models import Line
from inspection.selectors import visible_lines
from labeling.models import LabelSource
from labeling.selectors import latest_revisions
from loupe.common.errors import InvalidInput
from loupe.common.permissions import is_admin
from loupe.common.time_limits import failure_message

logger = logging.getLogger(__name__)

SPLIT_RULE = "sha256-mod-100:train<80,val<90,test"  # part of the hash: change it, change versions
MAX_NAME_LENGTH = 100
# A queued or running export whose heartbeat is older than this is taken for dead (its
# worker was killed): asking again starts a new one instead of waiting on it.
STALE_AFTER = timedelta(minutes=10)
PROGRESS_EVERY_S = 1.0


def split_for(image_sha256: str) -> str:
    """Train, val or test from the image's content hash: the same picture always lands in the
    same split, even when two stations posted it, so no test image leaks into training."""
    bucket = int(image_sha256[:8], 16) % 100
    if bucket < 80:
        return Split.TRAIN
    return Split.VAL if bucket < 90 else Split.TEST


# Freezing ---------------------------------------------------------------------------------


def _check_filters(filters: dict, user) -> dict:
    """Clean filters; a user who is not an admin selects from their own lines only (a line
    of someone else's is answered like one that does not exist)."""
    if not isinstance(filters, dict):
        raise InvalidInput("filters must be an object", field="filters")
    known = {"lines", "date_from", "date_to", "sources", "classes"}
    unknown = set(filters) - known
    if unknown:
        raise InvalidInput(f"unknown filter {', '.join(sorted(unknown))}", field="filters")
    for key in ("lines", "sources", "classes"):
        value = filters.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{key} must be a list of names", field=key)
    clean = {}
    allowed = Line.objects.all()
    if user is not None and not is_admin(user):
        allowed = visible_lines(user)
    lines = filters.get("lines") or []
    if lines:
        found = set(allowed.filter(name__in=lines).values_list("name", flat=True))
        if missing := sorted(set(lines) - found):
            raise InvalidInput(f"no line named {', '.join(missing)}", field="lines")
        clean["lines"] = sorted(set(lines))
    elif user is not None and not is_admin(user):
        # "all lines" means all of the user's lines, and the record says which they were
        clean["lines"] = sorted(allowed.values_list("name", flat=True))
    for key in ("date_from", "date_to"):
        if filters.get(key):
            try:
                clean[key] = date.fromisoformat(str(filters[key])).isoformat()
            except ValueError as error:
                raise InvalidInput(f"{key} must be a date like 2026-11-26", field=key) from error
    sources = filters.get("sources") or []
    if bad := sorted(set(sources) - set(LabelSource.values)):
        raise InvalidInput(f"unknown label source {', '.join(bad)}", field="sources")
    if sources:
        clean["sources"] = sorted(set(sources))
    if filters.get("classes"):
        clean["classes"] = sorted(set(filters["classes"]))
    return clean


def _latest_revisions_query(filters: dict):
    revisions = latest_revisions()
    if "lines" in filters:
        revisions = revisions.filter(inspection__line__name__in=filters["lines"])
    if filters.get("date_from"):
        revisions = revisions.filter(inspection__received_at__date__gte=filters["date_from"])
    if filters.get("date_to"):
        revisions = revisions.filter(inspection__received_at__date__lte=filters["date_to"])
    if filters.get("sources"):
        revisions = revisions.filter(source__in=filters["sources"])
    return revisions.order_by("inspection_id")


def _has_wanted_class(boxes: list, wanted: set) -> bool:
    return not wanted or not boxes or bool(wanted & {box["label"] for box in boxes})


def _selected_rows(filters: dict) -> list:
    """latest_revisions as plain rows: a version of 50,000 items is frozen without building
    100,000 model instances."""
    wanted = set(filters.get("classes") or [])
    rows = _latest_revisions_query(filters).values_list(
        "pk",
        "inspection_id",
        "inspection__line_id",
        "inspection__image",
        "inspection__image_sha256",
        "inspection__width",
        "inspection__height",
        "image_label",
        "boxes",
        "source",
        named=True,
    )
    return [row for row in rows.iterator(chunk_size=2000) if _has_wanted_class(row.boxes, wanted)]


def version_hash_of(rows) -> str:
    """The hash of a version from (revision id, image sha256) pairs: which labels of which
    image contents, under which split rule. Anyone can recompute it from a manifest.csv."""
    digest = hashlib.sha256(SPLIT_RULE.encode())
    for revision_id, image_sha256 in sorted(rows):
        digest.update(f"{revision_id} {image_sha256}\n".encode())
    return digest.hexdigest()


def _check_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = str(name).strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a name needs 1 to {MAX_NAME_LENGTH} characters", field="name")
    return name


def freeze_dataset(*, filters: dict, user=None, name: str | None = None):
    """Freeze the selection into a version; return (version, created).

    `user` None is the command line (every line); a user who is not an admin freezes from
    their own lines only. The same selection of the same revisions returns the existing
    version (created=False), whatever name was asked for. Raises InvalidInput on bad
    filters, a name taken by another version, or an empty selection.
    """
    filters = _check_filters(filters, user)
    name = _check_name(name)
    rows = _selected_rows(filters)
    if not rows:
        raise InvalidInput("the filters select no labeled inspection", field="filters")
    version_hash = version_hash_of((row.pk, row.inspection__image_sha256) for row in rows)
    existing = DatasetVersion.objects.filter(version_hash=version_hash).first()
    if existing:
        return existing, False
    if name and DatasetVersion.objects.filter(name=name).exists():
        raise InvalidInput(f"a dataset version named {name!r} exists", field="name")
    counts = defaultdict(lambda: {"images": 0, "defect_free": 0, "boxes": Counter()})
    splits = []
    for row in rows:
        split = split_for(row.inspection__image_sha256)
        splits.append(split)
        counts[split]["images"] += 1
        counts[split]["defect_free"] += row.image_label == "ok"
        counts[split]["boxes"].update(box["label"] for box in row.boxes)
    classes = sorted({label for c in counts.values() for label in c["boxes"]})
    try:
        with transaction.atomic():
            version = DatasetVersion.objects.create(
                name=name or f"ds-{DatasetVersion.objects.count() + 1}",
                version_hash=version_hash,
                filters=filters,
                classes=classes,
                counts={split: {**c, "boxes": dict(c["boxes"])} for split, c in counts.items()},
                item_count=len(rows),
                created_by=user,
            )
            version.lines.set({row.inspection__line_id for row in rows})
            for start in range(0, len(rows), 2000):
                DatasetItem.objects.bulk_create(
                    DatasetItem(
                        version=version,
                        inspection_id=row.inspection_id,
                        revision_id=row.pk,
                        split=split,
                        image=row.inspection__image,
                        image_sha256=row.inspection__image_sha256,
                        width=row.inspection__width,
                        height=row.inspection__height,
                        image_label=row.image_label,
                        boxes=row.boxes,
                        source=row.source,
                    )
                    for row, split in zip(
                        rows[start : start + 2000], splits[start : start + 2000], strict=True
                    )
                )
    except IntegrityError:
        # frozen at the same moment by someone else: theirs is the same version
        existing = DatasetVersion.objects.filter(version_hash=version_hash).first()
        if existing is None:
            raise InvalidInput(
                "another version took that name at the same moment; freeze again", field="name"
            ) from None
        return existing, False
    return version, True


# Exporting --------------------------------------------------------------------------------


def export_path(export: DatasetExport) -> Path:
    return Path(settings.MEDIA_ROOT) / export.file_name


def mark_unsent(model, object_id: int) -> None:
    """A run whose task could not be sent fails visibly instead of waiting forever; an
    import's uploaded archive goes with it (nothing will ever read it)."""
    failed = model.objects.filter(pk=object_id, state=ExportImportState.QUEUED).update(
        state=ExportImportState.FAILED,
        error="could not reach the workers; try again",
        finished_at=timezone.now(),
    )
    if failed and model is DatasetImport:
        record = DatasetImport.objects.get(pk=object_id)
        if record.archive_file:
            (Path(settings.MEDIA_ROOT) / record.archive_file).unlink(missing_ok=True)
            DatasetImport.objects.filter(pk=object_id).update(archive_file="")


def record_export(*, version: DatasetVersion, fmt: str, user=None) -> tuple[DatasetExport, bool]:
    """Record an export of the version for a worker to run; return (export, created).
    datasets.dispatch.start_export records it and sends it.

    Safe to repeat: while an export of the same version and format is queued or running
    (with a heartbeat younger than STALE_AFTER), that one is returned with created=False.
    Raises InvalidInput on an unknown format.
    """
    if fmt not in ExportFormat.values:
        raise InvalidInput(
            f"format must be one of {', '.join(ExportFormat.values)}", field="format"
        )
    with transaction.atomic():
        # lock the version row so two clicks at once do not both start an export
        DatasetVersion.objects.select_for_update().get(pk=version.pk)
        running = (
            DatasetExport.objects.filter(
                version=version,
                format=fmt,
                state__in=[ExportImportState.QUEUED, ExportImportState.RUNNING],
                updated_at__gte=timezone.now() - STALE_AFTER,
            )
            .order_by("-created_at")
            .first()
        )
        if running is not None:
            return running, False
        export = DatasetExport.objects.create(
            version=version,
            format=fmt,
            total=exporters.count_items(version, fmt),
            created_by=user,
        )
        export.file_name = f"exports/version-{version.pk}-{fmt}-{export.pk}.zip"
        export.save(update_fields=["file_name"])
    return export, True


def _progress_recorder(model, pk: int):
    """A callback(done, total) that writes the progress at most every PROGRESS_EVERY_S:
    one UPDATE per item would cost more than the export."""
    last = [0.0]

    def record(done: int, total: int) -> None:
        now = timezone.now().timestamp()
        if now - last[0] >= PROGRESS_EVERY_S or done == total:
            last[0] = now
            model.objects.filter(pk=pk).update(done=done, total=total, updated_at=timezone.now())

    return record


def run_export(*, export_id: int) -> None:
    """Write the export's zip. Safe to repeat: only the call that moves it from queued to
    running does anything. On any error the export is marked failed with the reason and no
    file, complete or partial, is left."""
    won = DatasetExport.objects.filter(pk=export_id, state=ExportImportState.QUEUED).update(
        state=ExportImportState.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    if won != 1:
        return
    export = DatasetExport.objects.select_related("version").get(pk=export_id)
    target = export_path(export)
    try:
        size = exporters.write_export(
            version=export.version,
            fmt=export.format,
            dest=target,
            progress=_progress_recorder(DatasetExport, export.pk),
        )
    except Exception as error:
        logger.exception("export %s failed", export_id)
        target.unlink(missing_ok=True)
        DatasetExport.objects.filter(pk=export_id).update(
            state=ExportImportState.FAILED,
            error=failure_message(error, kind="datasets"),
            finished_at=timezone.now(),
        )
        return
    DatasetExport.objects.filter(pk=export_id).update(
        state=ExportImportState.DONE, size_bytes=size, finished_at=timezone.now(), done=export.total
    )
    # each export copies its images, so the worker that writes one clears out the expired;
    # a failure there is not this export's failure
    try:
        remove_expired_exports()
        clean_up_orphans()
    except Exception:
        logger.exception("removing expired exports or orphans failed")


def remove_expired_exports(*, now=None) -> int:
    """Remove the zips of exports finished more than LOUPE_EXPORT_KEEP_DAYS ago; their rows
    stay (who exported what, when) with removed_at set. Returns how many were removed."""
    now = now or timezone.now()
    expired = DatasetExport.objects.filter(
        state=ExportImportState.DONE,
        removed_at__isnull=True,
        finished_at__lt=now - timedelta(days=limits.export_keep_days()),
    )
    removed = 0
    for export in expired.order_by("pk").iterator():
        # the file first: if this stops in between, the next pass marks the row
        export_path(export).unlink(missing_ok=True)
        removed += DatasetExport.objects.filter(pk=export.pk, removed_at__isnull=True).update(
            removed_at=now
        )
    if removed:
        logger.info("removed %d expired export zips", removed)
    return removed


def clean_up_orphans(*, now=None) -> dict:
    """What a killed worker left behind, STALE_AFTER after its last progress: runs still
    "running" fail and say so; uploads nothing will read and half-written zips are removed.

    Safe to repeat and beside live work: a live run writes its heartbeat (updated_at) as it
    goes, and its files are younger than STALE_AFTER. Returns {"failed": n, "files": n}.
    """
    now = now or timezone.now()
    cutoff = now - STALE_AFTER
    failed = 0
    for model in (DatasetExport, DatasetImport):
        failed += model.objects.filter(
            state=ExportImportState.RUNNING, updated_at__lt=cutoff
        ).update(
            state=ExportImportState.FAILED,
            error="the worker stopped during this run; start it again",
            finished_at=now,
        )
    waiting = ExportImportState.QUEUED, ExportImportState.RUNNING
    kept = set(
        DatasetImport.objects.filter(state__in=waiting).values_list("archive_file", flat=True)
    )
    media, removed = Path(settings.MEDIA_ROOT), 0
    for path in [*media.glob("imports/*.zip"), *media.glob("exports/.export-*.part")]:
        if path.relative_to(media).as_posix() in kept:
            continue
        if path.stat().st_mtime < cutoff.timestamp():
            path.unlink(missing_ok=True)
            removed += 1
    for record in DatasetImport.objects.exclude(state__in=waiting).exclude(archive_file=""):
        if not (media / record.archive_file).exists():
            DatasetImport.objects.filter(pk=record.pk).update(archive_file="")
    if failed or removed:
        logger.warning("cleaned up %d stopped runs and %d orphaned files", failed, removed)
    return {"failed": failed, "files": removed}


# Importing --------------------------------------------------------------------------------


def record_import(*, line: Line, fmt: str, upload, user) -> DatasetImport:
    """Keep an uploaded zip under MEDIA_ROOT/imports/ and record its import for a worker
    (datasets.dispatch.start_import records it and sends it).

    `upload` is a Django UploadedFile (name, size, chunks()). Raises InvalidInput on an
    unknown format, and ImportRefused when the archive is over the size limit (nothing kept).
    """
    if fmt not in ImportFormat.values:
        raise InvalidInput(
            f"format must be one of {', '.join(ImportFormat.values)}", field="format"
        )
    importers.check_archive_size(upload.size, upload.name)
    name = f"imports/{uuid.uuid4().hex}.zip"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for chunk in upload.chunks():
            handle.write(chunk)
    try:
        with transaction.atomic():
            record = DatasetImport.objects.create(
                line=line,
                format=fmt,
                archive_name=os.path.basename(upload.name or "archive.zip")[:255],
                archive_file=name,
                created_by=user,
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return record


def run_import(*, import_id: int) -> None:
    """Import the archive, all or nothing, and record the outcome: created items, or every
    bad file with its reason. Safe to repeat: only the call that moves it from queued to
    running does anything. The uploaded archive is removed either way."""
    won = DatasetImport.objects.filter(pk=import_id, state=ExportImportState.QUEUED).update(
        state=ExportImportState.RUNNING, updated_at=timezone.now()
    )
    if won != 1:
        return
    record = DatasetImport.objects.select_related("line", "created_by").get(pk=import_id)
    path = Path(settings.MEDIA_ROOT) / record.archive_file
    outcome = {"finished_at": timezone.now()}
    try:
        result = importers.import_archive(
            path=path,
            line=record.line,
            fmt=record.format,
            user=record.created_by,
            archive_name=record.archive_name,
            progress=_progress_recorder(DatasetImport, record.pk),
        )
    except importers.ImportRefused as refused:
        outcome.update(
            state=ExportImportState.FAILED,
            error=refused.message,
            problems=[p.as_dict() for p in refused.problems[: importers.MAX_REPORTED]],
            problem_count=len(refused.problems),
            skipped=[p.as_dict() for p in refused.skipped[: importers.MAX_REPORTED]],
        )
    except Exception as error:
        logger.exception("import %s failed", import_id)
        outcome.update(
            state=ExportImportState.FAILED, error=failure_message(error, kind="datasets")
        )
    else:
        outcome.update(
            state=ExportImportState.DONE,
            created_count=result.created,
            skipped=[p.as_dict() for p in result.skipped[: importers.MAX_REPORTED]],
        )
    finally:
        path.unlink(missing_ok=True)
    outcome["finished_at"] = timezone.now()
    DatasetImport.objects.filter(pk=import_id).update(archive_file="", **outcome)
