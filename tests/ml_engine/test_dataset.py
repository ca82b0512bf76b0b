import json
from pathlib import Path

import pytest
from PIL import Image

from ml.engine.dataset import load_coco_folder
from ml.engine.types import Region


def write_folder(root: Path, coco: dict, files=("images/a.png",)) -> Path:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 30)).save(root / name)
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def coco(**overrides) -> dict:
    base = {
        "images": [{"id": 7, "file_name": "images/a.png", "width": 40, "height": 30}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 2, "bbox": [1, 2, 10, 5], "iscrowd": 0}
        ],
        "categories": [{"id": 1, "name": "scratch"}, {"id": 2, "name": "dent"}],
    }
    base.update(overrides)
    return base


def test_loads_images_with_their_boxes_in_pixel_coordinates(tmp_path):
    samples = load_coco_folder(write_folder(tmp_path, coco()))
    assert len(samples) == 1
    sample = samples[0]
    assert sample.path == (tmp_path / "images/a.png").resolve()
    assert (sample.width, sample.height) == (40, 30)
    assert sample.boxes == (Region(1.0, 2.0, 11.0, 7.0, "dent", 1.0),)
    assert sample.is_defective


def test_image_without_annotations_is_defect_free(tmp_path):
    samples = load_coco_folder(write_folder(tmp_path, coco(annotations=[])))
    assert samples[0].boxes == ()
    assert not samples[0].is_defective


def test_bare_file_name_is_found_in_images_folder(tmp_path):
    images = [{"id": 7, "file_name": "a.png", "width": 40, "height": 30}]
    samples = load_coco_folder(write_folder(tmp_path, coco(images=images)))
    assert samples[0].path == (tmp_path / "images/a.png").resolve()


def test_generated_dataset_loads_with_matching_boxes(small_dataset):
    samples = load_coco_folder(small_dataset)
    annotations = json.loads((small_dataset / "annotations.json").read_text())["annotations"]
    assert len(samples) == 40
    assert sum(len(s.boxes) for s in samples) == len(annotations)
    assert 0 < sum(s.is_defective for s in samples) < 40


def test_missing_annotations_file_names_the_file(tmp_path):
    with pytest.raises(ValueError, match="annotations.json does not exist"):
        load_coco_folder(tmp_path)


def test_invalid_json_is_reported(tmp_path):
    (tmp_path / "annotations.json").write_text("{not json")
    with pytest.raises(ValueError, match="not readable JSON"):
        load_coco_folder(tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"images": "nope"}, "'images' must be a list"),
        ({"categories": [{"id": 1}]}, "malformed category"),
        (
            {"annotations": [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [0, 0, 1, 1]}]},
            "unknown category 9",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0]}]},
            "malformed annotation",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, -1, 1]}]},
            "negative box size",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 99, "category_id": 1, "bbox": [0, 0, 1, 1]}]},
            "missing image ids",
        ),
        ({"images": [{"id": 7, "file_name": "images/a.png"}]}, "malformed image entry"),
        (
            {"images": [{"id": 7, "file_name": "images/zz.png", "width": 4, "height": 4}]},
            "not found",
        ),
    ],
)
def test_malformed_annotations_raise_value_error_naming_the_problem(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        load_coco_folder(write_folder(tmp_path, coco(**overrides)))


def test_file_name_escaping_the_dataset_folder_is_refused(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "outside.png")
    images = [{"id": 7, "file_name": "../outside.png", "width": 4, "height": 4}]
    with pytest.raises(ValueError, match="outside the dataset"):
        load_coco_folder(write_folder(tmp_path / "data", coco(images=images, annotations=[])))
