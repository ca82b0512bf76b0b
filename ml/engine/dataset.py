"""Reading a COCO detection folder (data_dir/annotations.json plus the images it names).

Besides plain COCO, an images entry may carry "image_label": "defective" or "ok", a person's
image-level judgement. It is what tells a defective image whose boxes nobody drew (a reject
in review, an ImageFolder import) from a defect-free one: both have no annotations. Without
it an image is defective exactly when it has annotations, as in any COCO file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .types import Region

IMAGE_LABELS = ("defective", "ok")
# modes whose conversion to 8-bit RGB (Preprocessing.resize) keeps what a camera saw; a 16-bit
# or float image would be clipped to white, and some two-channel modes do not convert at all
CONVERTIBLE_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr"})


@dataclass(frozen=True)
class LabeledImage:
    """An image and its labels. `defective` None: defective exactly when it has boxes;
    True without boxes: defective by an image-level label only, where the defects are."""

    path: Path
    width: int
    height: int
    boxes: tuple[Region, ...]
    defective: bool | None = None

    def __post_init__(self) -> None:
        if self.defective is False and self.boxes:
            raise ValueError(f"{self.path}: an image labeled OK cannot have defect boxes")

    @property
    def is_defective(self) -> bool:
        return bool(self.boxes) if self.defective is None else self.defective

    @property
    def has_map_target(self) -> bool:
        """Whether the defect map's truth is known: boxes, or no defect at all (an all-zero
        map). A defective image without boxes trains the image head only."""
        return bool(self.boxes) or not self.is_defective


def unusable_reason(path: Path) -> str | None:
    """Why the image at `path` cannot be trained on or served, or None when it can: it is
    decoded in full (a truncated file opens, then fails) and its mode must convert to RGB."""
    try:
        with Image.open(path) as image:
            mode = image.mode
            image.load()
    except FileNotFoundError:
        return "missing"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"cannot be read ({type(exc).__name__})"
    if mode not in CONVERTIBLE_MODES:
        return f"mode {mode} does not convert to 8-bit RGB"
    return None


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
        label = entry.get("image_label")
        if label is not None and label not in IMAGE_LABELS:
            raise ValueError(f"{path}: image {image_id} has image_label {label!r}")
        found = tuple(boxes.pop(image_id, ()))
        if label == "ok" and found:
            raise ValueError(f"{path}: image {image_id} is labeled ok but has annotations")
        image_path = _resolve_image(root, file_name, path)
        defective = None if label is None else label == "defective"
        samples.append(LabeledImage(image_path, width, height, found, defective))
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
