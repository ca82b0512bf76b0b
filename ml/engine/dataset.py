"""Reading a COCO detection folder (data_dir/annotations.json plus the images it names)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .types import Region


@dataclass(frozen=True)
class LabeledImage:
    path: Path
    width: int
    height: int
    boxes: tuple[Region, ...]

    @property
    def is_defective(self) -> bool:
        return bool(self.boxes)


def load_coco_folder(data_dir: Path) -> list[LabeledImage]:
    """Images in file order; file_name is relative to data_dir (a bare name may sit in images/)."""
    data_dir = Path(data_dir)
    path = data_dir / "annotations.json"
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    try:
        coco = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(coco, dict):
        raise ValueError(f"{path}: top level must be an object")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ValueError(f"{path}: '{key}' must be a list")

    try:
        names = {int(c["id"]): str(c["name"]) for c in coco["categories"]}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: malformed category entry ({exc!r})") from exc

    boxes: dict[int, list[Region]] = {}
    for ann in coco["annotations"]:
        try:
            image_id, category = int(ann["image_id"]), int(ann["category_id"])
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed annotation {ann!r}") from exc
        if category not in names:
            raise ValueError(f"{path}: annotation {ann.get('id')} has unknown category {category}")
        if w < 0 or h < 0:
            raise ValueError(f"{path}: annotation {ann.get('id')} has a negative box size")
        boxes.setdefault(image_id, []).append(Region(x, y, x + w, y + h, names[category], 1.0))

    root = data_dir.resolve()
    samples, seen = [], set()
    for entry in coco["images"]:
        try:
            image_id, file_name = int(entry["id"]), str(entry["file_name"])
            width, height = int(entry["width"]), int(entry["height"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: malformed image entry {entry!r}") from exc
        if image_id in seen:
            raise ValueError(f"{path}: image id {image_id} appears twice")
        seen.add(image_id)
        image_path = _resolve_image(root, file_name, path)
        samples.append(LabeledImage(image_path, width, height, tuple(boxes.pop(image_id, ()))))
    if boxes:
        raise ValueError(f"{path}: annotations refer to missing image ids {sorted(boxes)[:5]}")
    return samples


def _resolve_image(root: Path, file_name: str, annotations: Path) -> Path:
    candidates = [root / file_name, root / "images" / file_name]
    for candidate in candidates:
        resolved = candidate.resolve()
        # uploaded datasets are untrusted: a file name must not reach outside the folder
        if not resolved.is_relative_to(root):
            raise ValueError(f"{annotations}: file_name {file_name!r} points outside the dataset")
        if resolved.is_file():
            return resolved
    raise ValueError(f"{annotations}: image file {file_name!r} not found")
