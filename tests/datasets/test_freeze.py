"""Freezing labeled inspections into immutable, hashed dataset versions."""

from datetime import timedelta

import pytest
from django.utils import timezone

from datasets.models import DatasetItem, DatasetVersion
from datasets.services import freeze_dataset, split_for
from loupe.common.errors import InvalidInput
from tests.datasets.conftest import DENT, SCRATCH
from tests.helpers import seed_inspection


def test_freeze_copies_the_latest_revision_of_every_labeled_inspection(labeled, label):
    corrected = label(labeled["ok1"], "defective", [SCRATCH], source="correction")
    version, created = freeze_dataset(filters={}, name="first")
    assert created
    items = {item.inspection_id: item for item in version.items.all()}
    assert set(items) == {i.pk for i in labeled.values()}  # the unlabeled one is not in
    assert items[labeled["ok1"].pk].revision == corrected
    assert items[labeled["ok1"].pk].boxes == [SCRATCH]
    assert items[labeled["two"].pk].boxes == [DENT, SCRATCH]
    assert items[labeled["two"].pk].source == "correction"
    assert version.classes == ["dent", "scratch"]
    assert version.item_count == 4
    assert list(version.lines.values_list("name", flat=True)) == ["line-a"]
    for inspection in labeled.values():
        item = items[inspection.pk]
        assert (item.image, item.image_sha256) == (inspection.image.name, inspection.image_sha256)
        assert (item.width, item.height) == (inspection.width, inspection.height)


def test_counts_per_split_and_class_add_up(labeled):
    version, _ = freeze_dataset(filters={})
    counts = version.counts
    assert sum(c["images"] for c in counts.values()) == 4
    assert sum(c["defect_free"] for c in counts.values()) == 2
    boxes = {}
    for split_counts in counts.values():
        for label, n in split_counts["boxes"].items():
            boxes[label] = boxes.get(label, 0) + n
    assert boxes == {"scratch": 2, "dent": 1}
    for item in version.items.all():
        assert item.split == split_for(item.image_sha256)


def test_freezing_the_same_revisions_twice_gives_the_same_version(labeled):
    first, created = freeze_dataset(filters={}, name="first")
    again, created_again = freeze_dataset(filters={"lines": ["line-a"]}, name="other name")
    assert (created, created_again) == (True, False)
    assert again == first
    assert DatasetVersion.objects.count() == 1
    assert DatasetItem.objects.count() == 4


def test_a_later_label_goes_into_a_later_version_and_the_earlier_one_is_unchanged(labeled, label):
    first, _ = freeze_dataset(filters={})
    label(labeled["ok2"], "defective", [DENT], source="correction")
    second, created = freeze_dataset(filters={})
    assert created
    assert second.version_hash != first.version_hash
    assert first.items.get(inspection=labeled["ok2"]).image_label == "ok"
    assert second.items.get(inspection=labeled["ok2"]).image_label == "defective"
    assert (first.name, second.name) == ("ds-1", "ds-2")


def test_split_depends_only_on_the_image_content(station_with_token, line, label):
    """The same picture from two stations is in one split, so a test image never leaks."""
    first = seed_inspection(station_with_token(line, "cam-1")[0], "SN-7")
    second = seed_inspection(station_with_token(line, "cam-2")[0], "SN-7")
    assert first.image_sha256 == second.image_sha256
    label(first, "ok")
    label(second, "ok")
    version, _ = freeze_dataset(filters={})
    assert {item.split for item in version.items.all()} == {split_for(first.image_sha256)}
    assert split_for("00000000" + "0" * 56) == "train"
    assert split_for(f"{85:08x}" + "0" * 56) == "val"
    assert split_for(f"{95:08x}" + "0" * 56) == "test"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"sources": ["correction"]}, {"two"}),
        ({"sources": ["human", "model_accepted"]}, {"scratch", "ok1", "ok2"}),
        # a class keeps its images and every image without boxes (the negatives)
        ({"classes": ["dent"]}, {"two", "ok1", "ok2"}),
        ({"date_from": timezone.now().date().isoformat()}, {"scratch", "two", "ok1", "ok2"}),
    ],
)
def test_filters_select_by_source_class_and_date(labeled, filters, expected):
    version, _ = freeze_dataset(filters=filters)
    names = {name for name, i in labeled.items() if version.items.filter(inspection=i).exists()}
    assert names == expected


def test_a_user_freezes_from_their_own_lines_only(
    labeled, data_team, other_line, station_with_token, label
):
    label(seed_inspection(station_with_token(other_line)[0], "SN-B"), "ok")
    version, _ = freeze_dataset(filters={}, user=data_team)
    assert version.filters == {"lines": ["line-a"]}
    assert version.item_count == 4
    assert version.created_by == data_team
    with pytest.raises(InvalidInput, match="no line named line-b"):
        freeze_dataset(filters={"lines": ["line-b"]}, user=data_team)


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"colour": ["red"]}, "unknown filter colour"),
        ({"date_from": "26/11/2026"}, "date_from must be a date"),
        ({"sources": ["guess"]}, "unknown label source guess"),
        ({"lines": "line-a"}, "lines must be a list"),
        ({"lines": ["nowhere"]}, "no line named nowhere"),
        ({"date_to": (timezone.now().date() - timedelta(days=1)).isoformat()}, "select no labeled"),
    ],
)
def test_bad_filters_are_refused_and_nothing_is_stored(labeled, filters, message):
    with pytest.raises(InvalidInput, match=message):
        freeze_dataset(filters=filters)
    assert DatasetVersion.objects.count() == 0
    assert DatasetItem.objects.count() == 0


def test_a_name_taken_by_another_version_is_refused(labeled, label):
    freeze_dataset(filters={}, name="march")
    label(labeled["ok1"], "defective", [SCRATCH])
    with pytest.raises(InvalidInput, match="named 'march' exists"):
        freeze_dataset(filters={}, name="march")
    assert DatasetVersion.objects.count() == 1
