"""Batch predictions: a zip of unlabeled images that a line's active model predicts, on a queue
of its own, with results as CSV or JSON and a way into the line's labeling queue.

The archive goes through the same checks as a dataset import (datasets.import_plans): its size,
its number of entries and what they unpack to, and every entry's path (no absolute path, "..",
link or other special file) are checked when it is uploaded, and a bad archive is refused as a
whole, with nothing kept. Each image is then validated like a station's upload when the worker
reads it; a file that is not a valid image is reported on its own row and the batch goes on.

Batch items stay out of live work: the model's outputs are rows of this app, and only the
images someone sends to labeling become inspections, offline ones (inspection.offline).
"""

import io
import logging
import os
import shutil
import time
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from datasets.import_plans import (
    IMAGE_EXTENSIONS,
    ImportRefused,
    Problem,
    _read_image,
    check_archive_size,
    entries,
)
from datasets.models import BatchImage, BatchPrediction, ExportImportState
from inspection import inference, storage
from inspection.models import Inspection, InspectionStatus, Line
from loupe.common.errors import LoupeError
from loupe.common.time_limits import failure_message

logger = logging.getLogger(__name__)

# Images per model call: few, so a station item that arrives meanwhile waits for little
CHUNK = 2
# Before each chunk the batch waits while a station's item waits for its model (polled every
# YIELD_POLL_S), but never more than YIELD_MAX_S, so a busy line slows a batch, never stops it.
# Items received longer than LIVE_WINDOW_S ago are the overdue job's, not live traffic.
YIELD_POLL_S = 0.02
YIELD_MAX_S = 1.0
LIVE_WINDOW_S = 60
# A running batch without progress for this long was left by a killed worker. Far above any
# pause the batch takes for stations: the idle scheduling class waits for a free core.
STALE_AFTER = timedelta(minutes=30)
PROGRESS_EVERY_S = 0.5
CREATE_CHUNK = 2000
MAX_NAME = 500
NOT_AN_IMAGE = "not a .png, .jpg or .jpeg file"


class BatchRefused(ImportRefused):
    """The archive was refused as a whole (nothing kept); `problems` names the bad files."""

    code = "batch_refused"


class BatchNotFinished(LoupeError):
    status_code = 409
    code = "batch_not_finished"


def batch_queue() -> str:
    """The Celery queue of batch predictions: apart from the stations' inference queue."""
    return getattr(settings, "LOUPE_BATCH_QUEUE", "batch")


def batch_nice() -> int:
    """How far a worker that serves only the batch queue lowers its CPU priority, so the
    operating system runs station work first when both want a core (0: not at all)."""
    return getattr(settings, "LOUPE_BATCH_NICE", 19)


# Starting a batch -------------------------------------------------------------------------


def _new_archive_path() -> Path:
    path = Path(settings.MEDIA_ROOT) / "batches" / f"{uuid.uuid4().hex}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def keep_upload(upload) -> Path:
    """Write an uploaded zip (a Django UploadedFile) under MEDIA_ROOT/batches/ for
    record_batch. Raises BatchRefused, keeping nothing, when it is over the size limit."""
    try:
        check_archive_size(upload.size, upload.name or "archive.zip")
    except ImportRefused as refused:
        raise BatchRefused(refused.message, refused.problems) from None
    path = _new_archive_path()
    try:
        with open(path, "wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def keep_file(source: Path) -> Path:
    """A copy of a zip on disk under MEDIA_ROOT/batches/, for record_batch (the command
    line's; the source is left as it was). Raises BatchRefused over the size limit."""
    source = Path(source)
    try:
        check_archive_size(source.stat().st_size, source.name)
    except ImportRefused as refused:
        raise BatchRefused(refused.message, refused.problems) from None
    path = _new_archive_path()
    try:
        shutil.copyfile(source, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def zip_folder(folder: Path) -> Path:
    """The images of a folder (and its subfolders) as an uncompressed zip under
    MEDIA_ROOT/batches/, for record_batch: the command line's way to start a batch. A link
    inside the folder is refused, as in an archive. Raises BatchRefused."""
    folder = Path(folder)
    links = [
        Problem(str(p.relative_to(folder)), "symbolic link")
        for p in sorted(folder.rglob("*"))
        if p.is_symlink()
    ]
    if links:
        raise BatchRefused(f"{len(links)} link(s) in {folder}; nothing was kept", links)
    path = _new_archive_path()
    try:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
            for file in sorted(p for p in folder.rglob("*") if p.is_file()):
                zf.write(file, file.relative_to(folder).as_posix())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _planned_rows(path: Path, source_name: str) -> list[BatchImage]:
    """The archive's files as unsaved rows, after the import checks. Raises BatchRefused."""
    try:
        check_archive_size(path.stat().st_size, source_name)
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise BatchRefused(
                "the file is not a zip archive", [Problem(source_name, str(error))]
            ) from None
        with zf:
            files, problems = entries(zf, source_name)
    except BatchRefused:
        raise
    except ImportRefused as refused:
        raise BatchRefused(refused.message, refused.problems) from None
    if problems:
        raise BatchRefused(
            f"{len(problems)} problem(s) in {source_name}; nothing was kept", problems
        )
    rows = [
        BatchImage(
            position=position,
            name=name[:MAX_NAME],
            error="" if name.lower().endswith(IMAGE_EXTENSIONS) else NOT_AN_IMAGE,
        )
        for position, name in enumerate(files)
    ]
    if all(row.error for row in rows):
        reason = "no .png, .jpg or .jpeg file found in the archive"
        raise BatchRefused(reason, [Problem(source_name, reason)])
    return rows


def record_batch(*, line: Line, archive: Path, source_name: str, user=None) -> BatchPrediction:
    """Record a batch prediction of the zip at `archive` (under MEDIA_ROOT, which the batch
    now owns) by the line's active model, for a worker to run (datasets.dispatch sends it).

    Raises BatchRefused when the line has no active model or the archive breaks an import
    rule (size, entries, unpacked size, paths, links, no image at all); the archive is then
    removed and nothing is recorded. Files that are not images are recorded as refused rows.
    """
    archive = Path(archive)
    source_name = os.path.basename(source_name or "archive.zip")[:255]
    try:
        if line.active_model_id is None:
            reason = f"line {line.name} has no active model to predict with"
            raise BatchRefused(reason, [Problem(source_name, reason)])
        rows = _planned_rows(archive, source_name)
        refused = sum(1 for row in rows if row.error)
        with transaction.atomic():
            batch = BatchPrediction.objects.create(
                line=line,
                model_version_id=line.active_model_id,
                source_name=source_name,
                archive_file=archive.relative_to(settings.MEDIA_ROOT).as_posix(),
                total=len(rows),
                done=refused,
                failed_count=refused,
                created_by=user,
            )
            for row in rows:
                row.batch = batch
            BatchImage.objects.bulk_create(rows, batch_size=CREATE_CHUNK)
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
    return batch


def mark_unsent(batch_id: int) -> None:
    """A batch whose task could not be sent fails visibly, and its archive goes."""
    if BatchPrediction.objects.filter(pk=batch_id, state=ExportImportState.QUEUED).update(
        state=ExportImportState.FAILED,
        error="could not reach the workers; try again",
        finished_at=timezone.now(),
    ):
        _remove_archive(BatchPrediction.objects.get(pk=batch_id))


def _remove_archive(batch: BatchPrediction) -> None:
    if batch.archive_file:
        (Path(settings.MEDIA_ROOT) / batch.archive_file).unlink(missing_ok=True)
        BatchPrediction.objects.filter(pk=batch.pk).update(archive_file="")


# Running it -------------------------------------------------------------------------------


def _decode(data: bytes):
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _read(zf: zipfile.ZipFile, row: BatchImage):
    """(decoded image, None) with the row's image fields filled and the file stored, or
    (None, reason)."""
    try:
        info = zf.getinfo(row.name)
    except KeyError:
        return None, "not in the archive any more"
    validated, reason = _read_image(zf, info)
    if reason:
        return None, reason
    row.sha256, row.image_format = validated.sha256, validated.format
    row.width, row.height = validated.width, validated.height
    row.image = storage.store_image(
        validated.data, sha256=validated.sha256, extension=validated.extension
    )
    return _decode(validated.data), None


def _predict(model, images: list) -> list:
    """The model's outputs, one per image: an exception for an image the model failed on.
    A chunk the model refuses is tried image by image, so one odd file fails alone."""
    try:
        return list(model.predict(images))
    except Exception:  # noqa: BLE001 - told apart below, image by image
        outputs = []
        for image in images:
            try:
                outputs.append(model.predict([image])[0])
            except Exception as error:  # noqa: BLE001 - recorded on the image's row
                outputs.append(error)
        return outputs


def _predict_chunk(model, zf, rows: list[BatchImage]) -> int:
    """Fill the rows' outputs or errors; return how many failed."""
    decoded = []
    for row in rows:
        image, reason = _read(zf, row)
        if reason:
            row.error = reason
        else:
            decoded.append((row, image))
    if decoded:
        started = time.perf_counter()
        outputs = _predict(model, [image for _, image in decoded])
        each_ms = (time.perf_counter() - started) * 1000 / len(decoded)
        for (row, _), output in zip(decoded, outputs, strict=True):
            if isinstance(output, Exception):
                row.error = f"the model failed on this image: {output}"
            else:
                row.defect_probability = output.defect_probability
                row.regions = [region.to_dict() for region in output.regions]
                row.latency_ms = each_ms
    return sum(1 for row in rows if row.error)


def _wait_for_live_items() -> None:
    """Stations first. Lowering the batch worker's priority is not enough: the two cores of a
    plant server share caches and memory bandwidth (and, on a virtual machine, often one
    physical core), so a batch predicting beside a station's item slows it by a third even at
    the idle priority (bench/batch_interference.py). So the batch predicts in the gaps between
    live items: while any item received in the last LIVE_WINDOW_S waits for its model (the
    partial index inspection_unrouted answers this at once), it waits, up to YIELD_MAX_S."""
    until = time.monotonic() + YIELD_MAX_S
    while time.monotonic() < until:
        recent = timezone.now() - timedelta(seconds=LIVE_WINDOW_S)
        if not Inspection.objects.filter(
            status=InspectionStatus.RECEIVED, received_at__gte=recent
        ).exists():
            return
        time.sleep(YIELD_POLL_S)


def _predict_pending(batch: BatchPrediction) -> None:
    model = inference.loaded_model(batch.model_version)
    pending = list(
        batch.images.filter(defect_probability__isnull=True, error="").order_by("position")
    )
    fields = [
        "sha256",
        "image",
        "image_format",
        "width",
        "height",
        "defect_probability",
        "regions",
        "latency_ms",
        "error",
    ]
    unsaved, failed = [], 0
    last = time.monotonic()
    with zipfile.ZipFile(Path(settings.MEDIA_ROOT) / batch.archive_file) as zf:
        for start in range(0, len(pending), CHUNK):
            rows = pending[start : start + CHUNK]
            _wait_for_live_items()
            failed += _predict_chunk(model, zf, rows)
            unsaved += rows
            if time.monotonic() - last < PROGRESS_EVERY_S and start + CHUNK < len(pending):
                continue
            # the outputs and the progress in one commit every PROGRESS_EVERY_S: a commit per
            # chunk would make the database's log flush compete with the stations' commits
            with transaction.atomic():
                BatchImage.objects.bulk_update(unsaved, fields)
                BatchPrediction.objects.filter(pk=batch.pk).update(
                    done=F("done") + len(unsaved),
                    failed_count=F("failed_count") + failed,
                    updated_at=timezone.now(),
                )
            unsaved, failed = [], 0
            last = time.monotonic()


def run_batch(*, batch_id: int) -> None:
    """Predict every image of the batch and record each output or refusal. Safe to repeat:
    only the call that moves it from queued to running does anything. A model that cannot be
    loaded fails the batch with the reason; the archive is removed either way."""
    won = BatchPrediction.objects.filter(pk=batch_id, state=ExportImportState.QUEUED).update(
        state=ExportImportState.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    if won != 1:
        return
    batch = BatchPrediction.objects.select_related("model_version").get(pk=batch_id)
    outcome = {"state": ExportImportState.DONE}
    try:
        _predict_pending(batch)
    except Exception as error:
        logger.exception("batch %s failed", batch_id)
        outcome = {
            "state": ExportImportState.FAILED,
            "error": failure_message(error, kind="datasets"),
        }
    finally:
        _remove_archive(batch)
        # conditional: a batch the clean-up took for dead stays failed
        BatchPrediction.objects.filter(pk=batch_id, state=ExportImportState.RUNNING).update(
            finished_at=timezone.now(), **outcome
        )
    # each batch clears what killed workers left behind (as each export does); a failure there
    # is not this batch's
    try:
        clean_up_stale_batches()
    except Exception:
        logger.exception("cleaning up stale batches failed")


def clean_up_stale_batches(*, now=None) -> dict:
    """What a killed batch worker left: batches running without progress for STALE_AFTER
    fail and say so, and archives no queued or running batch will read (older than
    STALE_AFTER) are removed. Safe to repeat and beside live batches (their heartbeat and
    files are younger). Returns {"failed": n, "files": n}."""
    now = now or timezone.now()
    cutoff = now - STALE_AFTER
    failed = 0
    stale = BatchPrediction.objects.filter(state=ExportImportState.RUNNING, updated_at__lt=cutoff)
    for record in stale:
        failed += BatchPrediction.objects.filter(
            pk=record.pk, state=ExportImportState.RUNNING, updated_at__lt=cutoff
        ).update(
            state=ExportImportState.FAILED,
            error="the worker stopped during this batch; start it again",
            finished_at=now,
        )
        _remove_archive(record)
    waiting = [ExportImportState.QUEUED, ExportImportState.RUNNING]
    kept = set(
        BatchPrediction.objects.filter(state__in=waiting).values_list("archive_file", flat=True)
    )
    media, removed = Path(settings.MEDIA_ROOT), 0
    for path in media.glob("batches/*.zip"):
        if (
            path.relative_to(media).as_posix() not in kept
            and path.stat().st_mtime < cutoff.timestamp()
        ):
            path.unlink(missing_ok=True)
            removed += 1
    if failed or removed:
        logger.warning("cleaned up %d stopped batches and %d orphaned archives", failed, removed)
    return {"failed": failed, "files": removed}
