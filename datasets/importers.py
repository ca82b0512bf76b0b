"""Importing a COCO or ImageFolder zip as labeled inspections of one line, all or nothing.

The archive is read in place and never unpacked: entry names are checked (no absolute path,
no "..", no link or other special file) and reported when bad, but no file is ever written
under an entry's name. Images are validated like a station's upload and stored
content-addressed, so the archive decides no path on disk at all.

Two passes keep memory flat for 50,000 files: the first reads and validates every entry
and keeps only what it learned (hash, size, labels); the second, when nothing was wrong,
reads each image again, stores it, and creates the rows in one transaction.
"""

import hashlib
import zipfile
from pathlib import Path

from django.db import IntegrityError, transaction

from datasets.import_plans import (
    CREATE_CHUNK,
    MAX_REPORTED,
    OK_FOLDERS,
    ImportRefused,
    ImportResult,
    PlannedImage,
    Problem,
    Progress,
    check_archive_size,
    entries,
    plan_coco,
    plan_imagefolder,
)
from datasets.models import ImportFormat
from inspection import decisions, storage
from inspection import services as inspection_services
from inspection.models import Inspection, Line, Outcome
from inspection.services import IMPORT_STATION
from labeling import services as labeling_services
from labeling.models import ImageLabel

# names the views, tasks and tests read from here
__all__ = [
    "IMPORT_STATION",
    "MAX_REPORTED",
    "OK_FOLDERS",
    "ImportRefused",
    "check_archive_size",
    "import_archive",
]


# Both -------------------------------------------------------------------------------------


def _external_id(sha256: str) -> str:
    # the content is the key: importing the same image to a line again finds it there
    return f"import:{sha256}"


def _drop_duplicates(planned: list[PlannedImage], line: Line):
    """Leave out images already imported to the line, and repeats inside the archive; a
    repeat with other labels is a problem (which labels would be right?)."""
    kept, problems, skipped, first = [], [], [], {}
    existing = set()
    ids = [_external_id(p.sha256) for p in planned]
    for start in range(0, len(ids), CREATE_CHUNK):
        existing.update(
            Inspection.objects.filter(
                station__line=line,
                station__name=IMPORT_STATION,
                external_id__in=ids[start : start + CREATE_CHUNK],
            ).values_list("external_id", flat=True)
        )
    for item in planned:
        earlier = first.get(item.sha256)
        if earlier is not None:
            if (earlier.image_label, earlier.boxes) == (item.image_label, item.boxes):
                skipped.append(Problem(item.entry, f"same image as {earlier.entry}"))
            else:
                problems.append(
                    Problem(item.entry, f"same image as {earlier.entry}, with other labels")
                )
            continue
        first[item.sha256] = item
        if _external_id(item.sha256) in existing:
            skipped.append(Problem(item.entry, f"already imported to line {line.name}"))
            continue
        kept.append(item)
    return kept, problems, skipped


def _create(zf, planned: list[PlannedImage], *, line, user, archive_name, progress):
    stored_new = []
    try:
        for done, item in enumerate(planned, start=1):
            data = zf.read(item.entry)
            if hashlib.sha256(data).hexdigest() != item.sha256:
                raise ImportRefused(
                    "the archive changed while it was imported",
                    [Problem(item.entry, "content changed")],
                )
            name = storage.image_name(item.sha256, item.extension)
            if not storage.image_path(name).exists():
                stored_new.append(name)
            storage.store_image(data, sha256=item.sha256, extension=item.extension)
            progress(done, len(planned))
        with transaction.atomic():
            station = inspection_services.import_station(line)
            for start in range(0, len(planned), CREATE_CHUNK):
                _create_rows(planned[start : start + CREATE_CHUNK], station, user, archive_name)
    except BaseException as error:
        # content-addressed files are shared: remove only those this import added and no
        # inspection uses (the transaction was rolled back, so none of ours do)
        for name in stored_new:
            if not Inspection.objects.filter(image=name).exists():
                storage.delete_image(name)
        if isinstance(error, IntegrityError):
            raise ImportRefused(
                "another import of the same images ran at the same time; import again "
                "(images already imported are left out)"
            ) from error
        raise


def _create_rows(chunk: list[PlannedImage], station, user, archive_name: str) -> None:
    """Imported items are labeled data, not live decisions: inspection.decisions records
    them decided by the importing user, vouching for the archive's labels; labeling records
    the labels, with the archive and file named in the metadata and in the revision's note."""
    inspections = decisions.record_imported_inspections(
        station=station,
        inspector=user,
        routing_policy=inspection_services.routing_policy_snapshot(station.line),
        items=[
            decisions.ImportedItem(
                external_id=_external_id(item.sha256),
                image_name=storage.image_name(item.sha256, item.extension),
                sha256=item.sha256,
                image_format=item.format,
                width=item.width,
                height=item.height,
                outcome=Outcome.ACCEPT if item.image_label == ImageLabel.OK else Outcome.REJECT,
                metadata={
                    "import": {
                        "archive": archive_name,
                        "file": item.entry,
                        **({"class": item.folder} if item.folder else {}),
                    }
                },
            )
            for item in chunk
        ],
    )
    labeling_services.record_imported_labels(
        author=user,
        labels=[
            (
                inspection,
                item.image_label,
                item.boxes,
                f"imported from {archive_name}: {item.entry}",
            )
            for inspection, item in zip(inspections, chunk, strict=True)
        ],
    )


def import_archive(
    *,
    path: Path,
    line: Line,
    fmt: str,
    user,
    archive_name: str,
    progress: Progress | None = None,
) -> ImportResult:
    """Create labeled inspections of `line` from a COCO or ImageFolder zip, all or nothing.

    Raises ImportRefused, naming every bad file and why, when anything is wrong: nothing is
    then created or stored. Safe to repeat: images already imported to the line are left
    out and listed as skipped, so a second run of the same archive creates nothing.
    """
    if fmt not in ImportFormat.values:
        raise ImportRefused(f"format must be one of {', '.join(ImportFormat.values)}")
    if user is None:
        raise ImportRefused("an import needs a user: the labels are recorded as theirs")
    progress = progress or (lambda done, total: None)
    validated = [0]

    def validating(done: int, total: int) -> None:
        # the bar's first half validates every file, the second stores the images
        validated[0] = total
        progress(done, total * 2)

    def storing(done: int, total: int) -> None:
        progress(validated[0] + done, validated[0] + total)

    path = Path(path)
    check_archive_size(path.stat().st_size, archive_name)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise ImportRefused(
            "the file is not a zip archive", [Problem(archive_name, str(error))]
        ) from None
    with zf:
        files, problems = entries(zf, archive_name)
        plan = plan_coco if fmt == ImportFormat.COCO else plan_imagefolder
        planned, more_problems, skipped = plan(zf, files, line, validating, archive_name)
        planned, duplicate_problems, duplicates = _drop_duplicates(planned, line)
        problems += more_problems + duplicate_problems
        skipped += duplicates
        if problems:
            raise ImportRefused(
                f"{len(problems)} problem(s) in {archive_name}; nothing was imported",
                problems,
                skipped,
            )
        if not planned and not duplicates:
            reason = (
                "no image found: a COCO archive needs annotations.json and its images, an "
                "ImageFolder archive <class>/<image> files"
            )
            raise ImportRefused(reason, [Problem(archive_name, reason)])
        _create(
            zf,
            planned,
            line=line,
            user=user,
            archive_name=archive_name,
            progress=storing,
        )
    return ImportResult(created=len(planned), skipped=skipped)
