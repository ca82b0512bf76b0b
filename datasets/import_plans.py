"""Reading an import archive and planning what it holds: the first pass of an import.

Every entry is checked and every image validated, keeping only what was learned (hash, size,
labels) as PlannedImage rows; nothing is stored or written here. datasets.importers then
stores what was planned.
"""

import json
import math
import posixpath
import re
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from datasets import limits
from inspection.images import validate_image
from inspection.models import Line
from labeling.models import ImageLabel
from loupe.common.errors import LoupeError

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


def entries(zf: zipfile.ZipFile, archive_name: str):
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


def plan_imagefolder(zf, files, line: Line, progress: Progress, archive_name: str):
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


def plan_coco(zf, files, line: Line, progress: Progress, archive_name: str):
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
