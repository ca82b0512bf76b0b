"""Writing dataset items as a COCO folder that ml.engine.dataset.load_coco_folder reads."""

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from inspection.storage import image_path


def write_coco_folder(items: Iterable, out_dir: Path, *, classes: list[str]) -> int:
    """Write images/ and annotations.json for `items` (DatasetItems, or anything with image,
    width, height, image_label and boxes); return how many images were written.

    Each images entry carries the item's image_label ("defective" or "ok"), which
    load_coco_folder reads: a defective image without boxes (an image-level label) must stay
    apart from a defect-free one, and plain COCO has no annotation to tell them apart.

    Images are hard links to the stored files where the file system allows (no copy of the
    pixels), else copies: not symlinks, which the engine refuses as pointing outside the
    folder. annotations.json is written last, so a folder cut short never loads.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    class_ids = {name: i + 1 for i, name in enumerate(classes)}
    images, annotations = [], []
    for number, item in enumerate(items, start=1):
        source = image_path(item.image)
        file_name = f"images/{Path(item.image).name}"
        target = out_dir / file_name
        if not target.exists():
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        images.append(
            {
                "id": number,
                "file_name": file_name,
                "width": item.width,
                "height": item.height,
                "image_label": item.image_label,
            }
        )
        for box in item.boxes:
            w, h = box["x1"] - box["x0"], box["y1"] - box["y0"]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": number,
                    "category_id": class_ids[box["label"]],
                    "bbox": [box["x0"], box["y0"], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    coco = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in class_ids.items()],
    }
    (out_dir / "annotations.json").write_text(json.dumps(coco))
    return len(images)
