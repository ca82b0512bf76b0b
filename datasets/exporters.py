"""Writing a dataset version as a zip: COCO detection, YOLO, ImageFolder, or a CSV manifest
with the images. Every zip also holds manifest.csv (lineage and content hashes of what it
contains) and dataset.json (the version's hash, filters, classes and counts).

Memory stays bounded whatever the size of the version: items are read from the database in
chunks, each image is copied from its stored file into the zip in blocks, and JSON and CSV
are written record by record. What grows with the item count is zipfile's central directory
(one small ZipInfo per entry), written when the zip is closed.
"""

import csv
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from datasets.models import DatasetItem, DatasetVersion, ExportFormat, Split
from inspection.storage import image_path

DETECTION_FORMATS = {ExportFormat.COCO, ExportFormat.YOLO}
ROW_FIELDS = (
    "inspection_id",
    "revision_id",
    "revision__number",
    "inspection__line__name",
    "split",
    "image",
    "image_sha256",
    "width",
    "height",
    "image_label",
    "boxes",
    "source",
)
MANIFEST_COLUMNS = (
    "file",
    "split",
    "image_label",
    "boxes",
    "width",
    "height",
    "image_sha256",
    "inspection_id",
    "revision_id",
    "revision_number",
    "source",
    "line",
)
CHUNK = 2000

Progress = Callable[[int, int], None]


class ExportError(Exception):
    pass


def _items(version: DatasetVersion, fmt: str, split: str | None = None):
    items = DatasetItem.objects.filter(version=version)
    if fmt in DETECTION_FORMATS:
        # A defective image without boxes (an image-level label, e.g. from an ImageFolder
        # import) would read as defect-free in a detection format: it is left out there.
        items = items.exclude(image_label="defective", boxes=[])
    if split is not None:
        items = items.filter(split=split)
    return items


def count_items(version: DatasetVersion, fmt: str) -> int:
    return _items(version, fmt).count()


def _rows(version: DatasetVersion, fmt: str, split: str | None = None) -> Iterator:
    rows = _items(version, fmt, split).order_by("pk").values_list(*ROW_FIELDS, named=True)
    return rows.iterator(chunk_size=CHUNK)


def file_in_zip(row, fmt: str) -> str:
    """Where an item's image sits in the zip: named after its inspection, which is unique in
    a version (two inspections of the same picture still get a file each)."""
    name = f"{row.inspection_id}.{row.image.rsplit('.', 1)[-1]}"
    if fmt == ExportFormat.YOLO:
        return f"images/{row.split}/{name}"
    if fmt == ExportFormat.IMAGEFOLDER:
        return f"{row.split}/{'ok' if row.image_label == 'ok' else 'defective'}/{name}"
    return f"images/{name}"


def coco_extent(start: float, end: float) -> float:
    """A width w with start + w == end in floating point, so that a reader who computes the
    far edge as x + w gets Loupe's box back exactly."""
    width = end - start
    for candidate in (width, math.nextafter(width, math.inf), math.nextafter(width, -math.inf)):
        if start + candidate == end:
            return candidate
    return width


def yolo_label_text(boxes: list[dict], width: int, height: int, class_ids: dict) -> str:
    """One line per box: class cx cy w h, normalized to the image size."""
    lines = []
    for box in boxes:
        cx = (box["x0"] + box["x1"]) / 2 / width
        cy = (box["y0"] + box["y1"]) / 2 / height
        w = (box["x1"] - box["x0"]) / width
        h = (box["y1"] - box["y0"]) / height
        lines.append(f"{class_ids[box['label']]} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}\n")
    return "".join(lines)


def write_export(
    *, version: DatasetVersion, fmt: str, dest: Path, progress: Progress | None = None
) -> int:
    """Write the version as a zip at `dest` and return its size in bytes.

    The zip is written to a hidden file beside `dest` and renamed at the end, so `dest`
    either does not exist or is complete. Raises ExportError (a stored image is missing) or
    OSError (disk full...), leaving nothing behind.
    """
    if fmt not in ExportFormat.values:
        raise ExportError(f"unknown export format {fmt!r}")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".export-", suffix=".part")
    try:
        with (
            os.fdopen(fd, "wb") as handle,
            zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as zf,
        ):
            total = count_items(version, fmt)
            _write_images(zf, version, fmt, total, progress or (lambda done, total: None))
            if fmt == ExportFormat.COCO:
                _write_coco_files(zf, version)
            elif fmt == ExportFormat.YOLO:
                _write_data_yaml(zf, version)
            _write_manifest(zf, version, fmt)
            _write_description(zf, version, fmt, total)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest.stat().st_size


def _write_images(zf: zipfile.ZipFile, version, fmt: str, total: int, progress: Progress):
    class_ids = {name: i for i, name in enumerate(version.classes)}
    if fmt == ExportFormat.YOLO:
        # every split has its folders, even an empty one, so a trainer finds them all
        for split in Split.values:
            zf.mkdir(f"images/{split}")
            zf.mkdir(f"labels/{split}")
    progress(0, total)
    for done, row in enumerate(_rows(version, fmt), start=1):
        source = image_path(row.image)
        if not source.is_file():
            raise ExportError(
                f"the image of inspection {row.inspection_id} ({row.image}) is missing from storage"
            )
        # images are PNG or JPEG, already compressed: stored, not deflated again
        zf.write(source, file_in_zip(row, fmt), compress_type=zipfile.ZIP_STORED)
        if fmt == ExportFormat.YOLO:
            # an empty label file says "no defect" to YOLO trainers
            label = yolo_label_text(row.boxes, row.width, row.height, class_ids)
            zf.writestr(f"labels/{row.split}/{row.inspection_id}.txt", label)
        progress(done, total)


def _text_entry(zf: zipfile.ZipFile, name: str) -> io.TextIOWrapper:
    # force_zip64: the size is not known in advance and may pass 2 GiB
    return io.TextIOWrapper(zf.open(name, "w", force_zip64=True), encoding="utf-8", newline="")


def _write_coco_files(zf: zipfile.ZipFile, version: DatasetVersion) -> None:
    """annotations.json holds every image (the layout generate_images writes, so train_model
    reads it); annotations_<split>.json one split each."""
    _write_coco(zf, "annotations.json", version, None)
    for split in Split.values:
        _write_coco(zf, f"annotations_{split}.json", version, split)


def _write_coco(zf, name: str, version: DatasetVersion, split: str | None) -> None:
    category_ids = {label: i for i, label in enumerate(version.classes, start=1)}
    categories = [
        {"id": i, "name": label, "supercategory": "defect"} for label, i in category_ids.items()
    ]
    info = {
        "description": f"Loupe dataset version {version.name}",
        "version": version.version_hash,
        "split": split or "all",
    }
    with _text_entry(zf, name) as out:
        # JSON is written one record at a time: the whole document is never in memory
        out.write(f'{{"info": {json.dumps(info)},\n"categories": {json.dumps(categories)},\n')
        out.write('"images": [')
        for index, row in enumerate(_rows(version, ExportFormat.COCO, split)):
            image = {
                "id": row.inspection_id,
                "file_name": file_in_zip(row, ExportFormat.COCO),
                "width": row.width,
                "height": row.height,
                "split": row.split,
                "image_label": row.image_label,
                "sha256": row.image_sha256,
            }
            out.write(("," if index else "") + "\n" + json.dumps(image))
        out.write('],\n"annotations": [')
        annotation_id = 0
        for row in _rows(version, ExportFormat.COCO, split):
            for box in row.boxes:
                w = coco_extent(box["x0"], box["x1"])
                h = coco_extent(box["y0"], box["y1"])
                annotation_id += 1
                annotation = {
                    "id": annotation_id,
                    "image_id": row.inspection_id,
                    "category_id": category_ids[box["label"]],
                    "bbox": [box["x0"], box["y0"], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
                out.write(("," if annotation_id > 1 else "") + "\n" + json.dumps(annotation))
        out.write("]}\n")


def _write_data_yaml(zf: zipfile.ZipFile, version: DatasetVersion) -> None:
    # written by hand: JSON strings are valid YAML scalars, so a class name cannot break it
    lines = [
        f"# Loupe dataset version {json.dumps(version.name)} ({version.version_hash})",
        "path: .",
        "train: images/train",
        "val: images/val",
        "test: images/test",
        f"nc: {len(version.classes)}",
        "names:" if version.classes else "names: {}",
        *(f"  {i}: {json.dumps(label)}" for i, label in enumerate(version.classes)),
    ]
    zf.writestr("data.yaml", "\n".join(lines) + "\n")


def manifest_lines(version: DatasetVersion, fmt: str = ExportFormat.CSV) -> Iterator[str]:
    """manifest.csv, line by line: one row per exported image with its labels, content hash
    and lineage (inspection, annotation revision, line)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(MANIFEST_COLUMNS)
    yield take()
    for row in _rows(version, fmt):
        writer.writerow(
            [
                file_in_zip(row, fmt),
                row.split,
                row.image_label,
                json.dumps(row.boxes, separators=(",", ":")),
                row.width,
                row.height,
                row.image_sha256,
                row.inspection_id,
                row.revision_id,
                row.revision__number,
                row.source,
                row.inspection__line__name,
            ]
        )
        yield take()


def _write_manifest(zf: zipfile.ZipFile, version: DatasetVersion, fmt: str) -> None:
    with _text_entry(zf, "manifest.csv") as out:
        for text in manifest_lines(version, fmt):
            out.write(text)


def description(version: DatasetVersion, fmt: str, exported: int) -> dict:
    return {
        "name": version.name,
        "version_hash": version.version_hash,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by.username if version.created_by else None,
        "filters": version.filters,
        "classes": version.classes,
        "counts": version.counts,
        "item_count": version.item_count,
        "format": fmt,
        "exported_items": exported,
        "left_out_defective_without_boxes": version.item_count - exported,
    }


def _write_description(zf: zipfile.ZipFile, version: DatasetVersion, fmt: str, total: int):
    zf.writestr("dataset.json", json.dumps(description(version, fmt, total), indent=1) + "\n")
