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
import json
import math
import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import IntegrityError, transaction
from django.utils import timezone

from datasets import limits
from datasets.models import ImportFormat
from inspection import storage
from inspection.errors import LoupeError
from inspection.images import validate_image
from inspection.models import (
    AutomationLevel,
    DecidedBy,
    Decision,
    Inspection,
    InspectionStatus,
    Line,
    Outcome,
    Station,
)
from inspection.services import create_station, policy_snapshot
from labeling.models import AnnotationRevision, ImageLabel, LabelSource

IMPORT_STATION = "dataset-import"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
OK_FOLDERS = {"ok", "good"}  # ImageFolder classes that mean "no defect"; any other: defective
# Files that archivers add on their own; left out without a word.
JUNK_PREFIXES = ("__MACOSX/",)
JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
MAX_REPORTED = 1000  # problems kept for the page; the count says how many there were
CREATE_CHUNK = 1000

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Problem:
    file: str
    reason: str

    def as_dict(self) -> dict:
        return {"file": self.file, "reason": self.reason}


class ImportRefused(LoupeError):
    """The archive was refused as a whole; `problems` names every bad file and why."""

    status_code = 422
    code = "import_refused"

    def __init__(self, message: str, problems=(), skipped=()):
        super().__init__(message)
        self.problems = list(problems)
        self.skipped = list(skipped)


@dataclass
class PlannedImage:
    entry: str
    sha256: str
    extension: str
    format: str
    width: int
    height: int
    image_label: str
    boxes: list = field(default_factory=list)
    folder: str | None = None


@dataclass(frozen=True)
class ImportResult:
    created: int
    skipped: list[Problem]


def check_archive_size(size: int, name: str) -> None:
    if size > limits.import_max_bytes():
        reason = f"the archive is {size} bytes; the limit is {limits.import_max_bytes()} bytes"
        raise ImportRefused(reason, [Problem(name, reason)])


def entry_problem(info: zipfile.ZipInfo) -> str | None:
    """Why an archive entry is refused, or None. Checked on every entry, used or not."""
    name = info.filename
    if "\\" in name:
        return "backslash in the path (a Windows extractor would take it for a folder)"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "absolute path"
    if ".." in name.split("/"):
        return "path leaves the archive folder (..)"
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver did not say
    if kind == stat.S_IFLNK:
        return "symbolic link"
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        return "not a regular file"
    if info.flag_bits & 0x1:
        return "encrypted"
    return None


def _is_junk(name: str) -> bool:
    return name.startswith(JUNK_PREFIXES) or posixpath.basename(name) in JUNK_NAMES


def _entries(zf: zipfile.ZipFile, archive_name: str):
    """The archive's files by name, after the count, size and path checks."""
    infos = zf.infolist()
    if len(infos) > limits.import_max_files():
        reason = f"the archive holds {len(infos)} entries; the limit is {limits.import_max_files()}"
        raise ImportRefused(reason, [Problem(archive_name, reason)])
    unpacked = sum(info.file_size for info in infos)
    if unpacked > limits.import_max_unpacked_bytes():
        reason = (
            f"the archive unpacks to {unpacked} bytes; the limit is "
            f"{limits.import_max_unpacked_bytes()} bytes"
        )
        raise ImportRefused(reason, [Problem(archive_name, reason)])
    files: dict[str, zipfile.ZipInfo] = {}
    problems = []
    for info in infos:
        if reason := entry_problem(info):
            problems.append(Problem(info.filename, reason))
        elif info.is_dir() or _is_junk(info.filename):
            continue
        elif info.filename in files:
            problems.append(Problem(info.filename, "appears twice in the archive"))
        else:
            files[info.filename] = info
    return files, problems


def _read_image(zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """(ValidatedImage, None) or (None, reason)."""
    max_bytes = limits.image_max_bytes()
    if info.file_size > max_bytes:
        return None, f"the image is {info.file_size} bytes; the limit is {max_bytes} bytes"
    try:
        with zf.open(info) as handle:
            # bounded read: a header that lies about the size cannot make us read more
            data = handle.read(max_bytes + 1)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, OSError) as error:
        return None, f"cannot be read from the archive: {error}"
    try:
        return validate_image(data, max_bytes=max_bytes, max_pixels=limits.image_max_pixels()), None
    except LoupeError as error:
        return None, error.message


def _planned(info, image, image_label, boxes=(), folder=None) -> PlannedImage:
    return PlannedImage(
        entry=info.filename,
        sha256=image.sha256,
        extension=image.extension,
        format=image.format,
        width=image.width,
        height=image.height,
        image_label=image_label,
        boxes=list(boxes),
        folder=folder,
    )


# ImageFolder ------------------------------------------------------------------------------


def _plan_imagefolder(zf, files, line: Line, progress: Progress, archive_name: str):
    """[...]/<class>/<image>: class ok or good is defect-free, any other class is defective
    with an image-level label only (no boxes); the class name is kept in the metadata."""
    planned, problems, skipped = [], [], []
    total = len(files)
    for done, (name, info) in enumerate(files.items(), start=1):
        progress(done, total)
        if not name.lower().endswith(IMAGE_EXTENSIONS):
            skipped.append(Problem(name, "not a .png, .jpg or .jpeg file"))
            continue
        parts = name.split("/")
        if len(parts) < 2:
            problems.append(Problem(name, "not inside a class folder (<class>/<image>)"))
            continue
        image, reason = _read_image(zf, info)
        if reason:
            problems.append(Problem(name, reason))
            continue
        folder = parts[-2]
        label = ImageLabel.OK if folder.lower() in OK_FOLDERS else ImageLabel.DEFECTIVE
        planned.append(_planned(info, image, label, folder=folder))
    return planned, problems, skipped


# COCO -------------------------------------------------------------------------------------


def _inside(base: str, file_name: str) -> str | None:
    """The archive name of a COCO file_name relative to the annotations' folder, or None if
    it would point outside it."""
    if file_name.startswith("/") or "\\" in file_name or re.match(r"^[A-Za-z]:", file_name):
        return None
    joined = posixpath.normpath(posixpath.join(base, file_name)) if base else file_name
    joined = posixpath.normpath(joined)
    if joined == ".." or joined.startswith("../") or (base and not joined.startswith(base + "/")):
        return None
    return joined


def _box_from_coco(bbox, width: int, height: int) -> tuple[dict | None, str | None]:
    if not isinstance(bbox, list) or len(bbox) != 4:
        return None, "bbox must be [x, y, width, height]"
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox):
        return None, "bbox values must be numbers"
    if not all(math.isfinite(v) for v in bbox):
        return None, "bbox values must be finite"
    x, y, w, h = bbox
    # Loupe keeps box corners on a 0.01-pixel grid, as the box editor does
    box = {
        "x0": round(float(x), 2),
        "y0": round(float(y), 2),
        "x1": round(float(x + w), 2),
        "y1": round(float(y + h), 2),
    }
    if not (0 <= box["x0"] < box["x1"] <= width and 0 <= box["y0"] < box["y1"] <= height):
        return None, f"bbox {bbox} is empty or outside the {width}x{height} image"
    return box, None


def _load_annotations(zf, files, archive_name: str):
    """(annotations.json's folder, parsed JSON) or raise ImportRefused."""
    found = sorted(n for n in files if posixpath.basename(n) == "annotations.json")
    if len(found) != 1:
        reason = f"a COCO archive needs exactly one annotations.json; this one has {len(found)}"
        raise ImportRefused(reason, [Problem(archive_name, reason)])
    name = found[0]
    info = files[name]
    if info.file_size > limits.import_max_json_bytes():
        reason = f"{info.file_size} bytes; the limit is {limits.import_max_json_bytes()} bytes"
        raise ImportRefused(f"{name}: {reason}", [Problem(name, reason)])
    try:
        with zf.open(info) as handle:
            coco = json.loads(handle.read(limits.import_max_json_bytes() + 1))
    except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, zlib.error) as error:
        raise ImportRefused(f"{name} is not readable JSON", [Problem(name, str(error))]) from None
    if not isinstance(coco, dict) or not all(
        isinstance(coco.get(key), list) for key in ("images", "annotations", "categories")
    ):
        reason = "needs lists 'images', 'annotations' and 'categories'"
        raise ImportRefused(f"{name} {reason}", [Problem(name, reason)])
    return name, coco


def _plan_coco(zf, files, line: Line, progress: Progress, archive_name: str):
    """annotations.json (anywhere, once) and the images it names, relative to its folder or
    to images/ beside it. An image with no annotation is defect-free; with boxes, defective.
    Files it does not name are left out and listed."""
    json_name, coco = _load_annotations(zf, files, archive_name)
    base = posixpath.dirname(json_name)
    problems, skipped, planned = [], [], []

    def bad(reason: str) -> None:
        problems.append(Problem(json_name, reason))

    categories = {}
    for category in coco["categories"]:
        if not isinstance(category, dict) or not isinstance(category.get("id"), int):
            bad(f"malformed category {str(category)[:100]}")
            continue
        categories[category["id"]] = str(category.get("name"))
    boxes_of: dict[int, list] = {}
    for annotation in coco["annotations"]:
        if not isinstance(annotation, dict):
            bad(f"malformed annotation {str(annotation)[:100]}")
            continue
        where = f"annotation {annotation.get('id')}"
        category_id = annotation.get("category_id")
        label = categories.get(category_id) if isinstance(category_id, int) else None
        if label is None:
            bad(f"{where}: unknown category_id {category_id!r}")
        elif label not in line.defect_classes:
            bad(
                f"{where}: class {label!r} is not one of line {line.name}'s classes "
                f"({', '.join(line.defect_classes)}); add it to the line first"
            )
        elif not isinstance(annotation.get("image_id"), int):
            bad(f"{where}: image_id must be an integer")
        else:
            boxes_of.setdefault(annotation["image_id"], []).append(
                (where, label, annotation.get("bbox"))
            )
    images, used = {}, {json_name}
    for entry in coco["images"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
            bad(f"malformed image entry {str(entry)[:100]}")
            continue
        if entry["id"] in images:
            bad(f"image id {entry['id']} appears twice")
            continue
        file_name = str(entry.get("file_name", ""))
        name = _inside(base, file_name)
        if name is None:
            problems.append(Problem(file_name, "file_name points outside the archive folder"))
            continue
        if name not in files:
            beside = _inside(base, f"images/{file_name}")
            name = beside if beside in files else None
        if name is None:
            problems.append(Problem(file_name, "named in annotations.json, not in the archive"))
            continue
        images[entry["id"]] = (entry, name)
        used.add(name)
    if missing := sorted(set(boxes_of) - set(images)):
        bad(f"annotations refer to image ids that are not listed: {missing[:10]}")
    for done, (image_id, (entry, name)) in enumerate(images.items(), start=1):
        progress(done, len(images))
        image, reason = _read_image(zf, files[name])
        if reason:
            problems.append(Problem(name, reason))
            continue
        declared = (entry.get("width"), entry.get("height"))
        if declared != (image.width, image.height):
            problems.append(
                Problem(
                    name,
                    f"annotations.json says {declared[0]}x{declared[1]}, "
                    f"the image is {image.width}x{image.height}",
                )
            )
            continue
        boxes = []
        for where, label, bbox in boxes_of.get(image_id, []):
            box, reason = _box_from_coco(bbox, image.width, image.height)
            if reason:
                bad(f"{where}: {reason}")
            else:
                boxes.append({**box, "label": label})
        label = ImageLabel.DEFECTIVE if boxes else ImageLabel.OK
        planned.append(_planned(files[name], image, label, boxes))
    skipped = [Problem(n, "not named in annotations.json") for n in files if n not in used]
    return planned, problems, skipped


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


def _import_station(line: Line) -> Station:
    """The line's station for imported items, made on first use and disabled: it stands for
    the archive, not a camera, and its token is never shown, so nothing can post as it."""
    station = Station.objects.filter(line=line, name=IMPORT_STATION).first()
    if station is None:
        station, _token = create_station(line=line, name=IMPORT_STATION)
        station.is_enabled = False
        station.save(update_fields=["is_enabled"])
    return station


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
            station = _import_station(line)
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


def _create_rows(chunk: list[PlannedImage], station: Station, user, archive_name: str) -> None:
    """Imported items are labeled data, not live decisions: decided by a human (the user who
    imported them, vouching for the archive's labels) under the human_only level, with the
    archive and file named in the metadata and in the revision's note."""
    line = station.line
    now = timezone.now()
    inspections = Inspection.objects.bulk_create(
        [
            Inspection(
                station=station,
                line=line,
                external_id=_external_id(item.sha256),
                metadata={
                    "import": {
                        "archive": archive_name,
                        "file": item.entry,
                        **({"class": item.folder} if item.folder else {}),
                    }
                },
                image=storage.image_name(item.sha256, item.extension),
                image_sha256=item.sha256,
                image_format=item.format,
                width=item.width,
                height=item.height,
                received_at=now,
                status=InspectionStatus.DECIDED,
                **{**policy_snapshot(line), "automation_level": AutomationLevel.HUMAN_ONLY},
                routed_at=now,
            )
            for item in chunk
        ]
    )
    Decision.objects.bulk_create(
        Decision(
            inspection=inspection,
            outcome=Outcome.ACCEPT if item.image_label == ImageLabel.OK else Outcome.REJECT,
            decided_by=DecidedBy.HUMAN,
            inspector=user,
            decided_at=now,
        )
        for inspection, item in zip(inspections, chunk, strict=True)
    )
    AnnotationRevision.objects.bulk_create(
        AnnotationRevision(
            inspection=inspection,
            number=1,
            author=user,
            image_label=item.image_label,
            boxes=item.boxes,
            source=LabelSource.HUMAN,
            note=f"imported from {archive_name}: {item.entry}"[:2000],
        )
        for inspection, item in zip(inspections, chunk, strict=True)
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
        files, problems = _entries(zf, archive_name)
        plan = _plan_coco if fmt == ImportFormat.COCO else _plan_imagefolder
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
