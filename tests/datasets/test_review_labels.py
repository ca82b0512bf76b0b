"""Review decisions' labels in dataset versions (the source filter) and in exports."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from datasets import exporters
from datasets.services import freeze_dataset
from labeling import review_labels
from review.services import decide_review_item
from tests.datasets.test_export import export
from tests.helpers import seed_inspection

EDITOR_SOURCES = ["human", "correction", "model_accepted"]


@pytest.fixture
def reviewed(labeled, station, make_user, line):
    """Beside `labeled` (four items labeled in the editor), two items decided in review at
    human_only: SN-R1 rejected, SN-R2 accepted, both final and labeled."""
    inspector = make_user("ines", "inspector", [line])
    items = {}
    for external_id, outcome in (("SN-R1", "reject"), ("SN-R2", "accept")):
        inspection = seed_inspection(station, external_id)
        decide_review_item(item=inspection.review_item, inspector=inspector, outcome=outcome)
        items[outcome] = inspection
    review_labels.label_final_decisions(now=timezone.now() + timedelta(hours=1))
    return items


def test_a_version_takes_review_labels_in_or_leaves_them_out(reviewed):
    everything = freeze_dataset(filters={})[0]
    only_review = freeze_dataset(filters={"sources": ["review"]})[0]
    without_review = freeze_dataset(filters={"sources": EDITOR_SOURCES})[0]

    assert everything.item_count == 6
    review_items = {item.inspection_id: item for item in only_review.items.all()}
    assert set(review_items) == {reviewed["reject"].pk, reviewed["accept"].pk}
    assert {item.source for item in review_items.values()} == {"review"}
    assert review_items[reviewed["reject"].pk].image_label == "defective"
    assert review_items[reviewed["accept"].pk].image_label == "ok"
    assert without_review.item_count == 4
    assert not without_review.items.filter(source="review").exists()


def test_exports_carry_review_labels_and_detection_formats_count_what_they_leave_out(
    reviewed, tmp_path
):
    version = freeze_dataset(filters={})[0]
    rejected = reviewed["reject"].pk

    manifest = export(version, "csv", tmp_path)
    rows = {
        int(row["inspection_id"]): row
        for row in csv.DictReader(io.TextIOWrapper(manifest.open("manifest.csv"), encoding="utf-8"))
    }
    assert (rows[rejected]["source"], rows[rejected]["image_label"]) == ("review", "defective")
    assert rows[reviewed["accept"].pk]["source"] == "review"

    folder = export(version, "imagefolder", tmp_path).namelist()
    assert any(name.endswith(f"/defective/{rejected}.png") for name in folder)

    # a reject without boxes would read as defect-free in COCO or YOLO: left out, and said so
    for fmt in ("coco", "yolo"):
        description = json.loads(export(version, fmt, tmp_path).read("dataset.json"))
        assert (description["exported_items"], description["left_out_defective_without_boxes"]) == (
            5,
            1,
        )
    coco = json.loads(export(version, "coco", tmp_path).read("annotations.json"))
    assert rejected not in {image["id"] for image in coco["images"]}
    assert reviewed["accept"].pk in {image["id"] for image in coco["images"]}
    assert exporters.count_items(version, "imagefolder") == 6
