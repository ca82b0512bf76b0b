"""Exports: COCO (checked with pycocotools), YOLO (read back), ImageFolder and the CSV
manifest; progress, safe repeats, and failures that leave no file."""

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
import yaml
from pycocotools.coco import COCO

from datasets import dispatch, exporters, services
from datasets.models import DatasetExport, DatasetItem, ExportImportState
from datasets.services import freeze_dataset, version_hash_of
from ml.engine.dataset import load_coco_folder
from tests.datasets.conftest import SCRATCH
from tests.helpers import seed_inspection


@pytest.fixture
def version(labeled):
    return freeze_dataset(filters={}, name="v1")[0]


def export(version, fmt, tmp_path) -> zipfile.ZipFile:
    path = tmp_path / f"{fmt}.zip"
    size = exporters.write_export(version=version, fmt=fmt, dest=path)
    assert size == path.stat().st_size
    return zipfile.ZipFile(path)


def corners(box: dict) -> tuple:
    return (box["x0"], box["y0"], box["x1"], box["y1"], box["label"])


def expected_boxes(version) -> dict:
    return {item.inspection_id: [corners(b) for b in item.boxes] for item in version.items.all()}


def test_coco_loads_in_pycocotools_and_boxes_round_trip_exactly(version, tmp_path):
    zf = export(version, "coco", tmp_path)
    zf.extractall(tmp_path / "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(names.values()) == ["dent", "scratch"]
    assert sorted(coco.getImgIds()) == sorted(version.items.values_list("inspection_id", flat=True))
    read_back = {}
    for image_id in coco.getImgIds():
        read_back[image_id] = [
            (x, y, x + w, y + h, names[a["category_id"]])
            for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            for x, y, w, h in [a["bbox"]]
        ]
    # exact float equality, not approximate: x + w gives Loupe's x1 back
    assert read_back == expected_boxes(version)
    defect_free = version.items.filter(image_label="ok").values_list("inspection_id", flat=True)
    assert defect_free and all(coco.getAnnIds(imgIds=[i]) == [] for i in defect_free)
    for image in coco.loadImgs(coco.getImgIds()):
        data = (tmp_path / "coco" / image["file_name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == image["sha256"]


def test_coco_splits_partition_the_images_and_train_model_can_read_the_folder(version, tmp_path):
    zf = export(version, "coco", tmp_path)
    zf.extractall(tmp_path / "coco")
    by_split = {}
    for split in ("train", "val", "test"):
        data = json.loads((tmp_path / "coco" / f"annotations_{split}.json").read_text())
        by_split[split] = {image["id"] for image in data["images"]}
        assert {a["image_id"] for a in data["annotations"]} <= by_split[split]
    for item in version.items.all():
        assert {s for s, ids in by_split.items() if item.inspection_id in ids} == {item.split}
    # the layout generate_images writes, which `manage.py train_model` reads
    samples = load_coco_folder(tmp_path / "coco")
    assert len(samples) == 4
    assert sum(sample.is_defective for sample in samples) == 2


def test_yolo_has_a_label_file_per_image_and_reads_back(version, tmp_path):
    zf = export(version, "yolo", tmp_path)
    names = set(zf.namelist())
    data = yaml.safe_load(zf.read("data.yaml"))
    assert data["names"] == {0: "dent", 1: "scratch"}
    assert (data["train"], data["val"], data["test"]) == (
        "images/train",
        "images/val",
        "images/test",
    )
    read_back = {}
    for item in version.items.all():
        image_name = f"images/{item.split}/{item.inspection_id}.png"
        label_name = f"labels/{item.split}/{item.inspection_id}.txt"
        assert image_name in names and label_name in names
        boxes = []
        for line in zf.read(label_name).decode().splitlines():
            cls, cx, cy, w, h = line.split()
            cx, w = float(cx) * item.width, float(w) * item.width
            cy, h = float(cy) * item.height, float(h) * item.height
            box = [round(v, 2) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)]
            boxes.append((*box, data["names"][int(cls)]))
        read_back[item.inspection_id] = boxes
        if item.image_label == "ok":
            assert zf.read(label_name) == b""  # an empty label file: no defect
    assert read_back == expected_boxes(version)
    for split in ("train", "val", "test"):
        assert f"images/{split}/" in names and f"labels/{split}/" in names


def test_imagefolder_sorts_images_into_split_and_label_folders(version, tmp_path):
    zf = export(version, "imagefolder", tmp_path)
    images = {n for n in zf.namelist() if n.endswith(".png")}
    assert images == {
        f"{item.split}/{'ok' if item.image_label == 'ok' else 'defective'}/{item.inspection_id}.png"
        for item in version.items.all()
    }


def test_manifest_lists_every_image_with_its_hash_and_lineage(version, tmp_path):
    zf = export(version, "csv", tmp_path)
    rows = list(csv.DictReader(io.TextIOWrapper(zf.open("manifest.csv"), encoding="utf-8")))
    assert len(rows) == 4
    items = {item.inspection_id: item for item in version.items.select_related("revision")}
    for row in rows:
        item = items[int(row["inspection_id"])]
        assert hashlib.sha256(zf.read(row["file"])).hexdigest() == row["image_sha256"]
        assert row["image_sha256"] == item.image_sha256
        assert (int(row["revision_id"]), int(row["revision_number"])) == (
            item.revision_id,
            item.revision.number,
        )
        assert (row["split"], row["image_label"], row["source"], row["line"]) == (
            item.split,
            item.image_label,
            item.source,
            "line-a",
        )
        assert json.loads(row["boxes"]) == item.boxes
    # the version hash can be checked from the manifest alone
    pairs = [(int(row["revision_id"]), row["image_sha256"]) for row in rows]
    assert version_hash_of(pairs) == version.version_hash
    description = json.loads(zf.read("dataset.json"))
    assert (description["version_hash"], description["exported_items"]) == (
        version.version_hash,
        4,
    )


def test_detection_formats_leave_out_defective_images_without_boxes(labeled, label, tmp_path):
    """An image-level "defective" without boxes would read as defect-free in COCO or YOLO."""
    label(labeled["ok1"], "defective", [])
    version = freeze_dataset(filters={})[0]
    assert exporters.count_items(version, "coco") == 3
    assert exporters.count_items(version, "imagefolder") == 4
    coco = json.loads(export(version, "coco", tmp_path).read("annotations.json"))
    assert labeled["ok1"].pk not in {image["id"] for image in coco["images"]}
    folder = export(version, "imagefolder", tmp_path).namelist()
    assert any(n.endswith(f"/defective/{labeled['ok1'].pk}.png") for n in folder)


def test_two_inspections_of_the_same_picture_get_a_file_each(
    line, station_with_token, label, tmp_path
):
    first = seed_inspection(station_with_token(line, "cam-1")[0], "SN-9")
    second = seed_inspection(station_with_token(line, "cam-2")[0], "SN-9")
    label(first, "defective", [SCRATCH])
    label(second, "ok")
    version = freeze_dataset(filters={})[0]
    zf = export(version, "yolo", tmp_path)
    labels = sorted(n for n in zf.namelist() if n.endswith(".txt"))
    assert len(labels) == 2
    assert sorted(len(zf.read(n)) > 0 for n in labels) == [False, True]


def test_an_export_runs_after_commit_and_records_its_progress(
    version, data_team, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record, created = dispatch.start_export(version=version, fmt="coco", user=data_team)
    record.refresh_from_db()
    assert created
    assert (record.state, record.done, record.total, record.error) == ("done", 4, 4, "")
    path = Path(settings.MEDIA_ROOT) / record.file_name
    assert record.size_bytes == path.stat().st_size
    assert "annotations.json" in zipfile.ZipFile(path).namelist()
    # a redelivered task finds it done and does nothing
    services.run_export(export_id=record.pk)
    assert DatasetExport.objects.get(pk=record.pk).finished_at == record.finished_at


def test_asking_again_while_an_export_waits_returns_that_export(
    version, data_team, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        first, created = dispatch.start_export(version=version, fmt="yolo", user=data_team)
        again, created_again = dispatch.start_export(version=version, fmt="yolo", user=data_team)
        other, created_other = dispatch.start_export(version=version, fmt="csv", user=data_team)
    assert (created, created_again, created_other) == (True, False, True)
    assert again == first and other != first
    assert DatasetExport.objects.filter(state=ExportImportState.QUEUED).count() == 2


def test_a_failed_export_is_marked_failed_and_leaves_no_file(
    version, data_team, settings, django_capture_on_commit_callbacks
):
    DatasetItem.objects.filter(pk=version.items.last().pk).update(image="images/00/missing.png")
    with django_capture_on_commit_callbacks(execute=True):
        record, _ = dispatch.start_export(version=version, fmt="coco", user=data_team)
    record.refresh_from_db()
    assert record.state == "failed"
    assert "missing from storage" in record.error
    exports = Path(settings.MEDIA_ROOT) / "exports"
    assert not (Path(settings.MEDIA_ROOT) / record.file_name).exists()
    assert not list(exports.glob(".export-*"))


def test_an_unknown_format_is_refused(version):
    with pytest.raises(services.InvalidInput, match="format must be one of"):
        dispatch.start_export(version=version, fmt="pascal")
    assert DatasetExport.objects.count() == 0


def test_zips_older_than_the_keep_days_are_removed_and_the_download_says_why(
    version, data_team, settings, client, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    settings.LOUPE_EXPORT_KEEP_DAYS = 7
    with django_capture_on_commit_callbacks(execute=True):
        old, _ = dispatch.start_export(version=version, fmt="coco", user=data_team)
        recent, _ = dispatch.start_export(version=version, fmt="csv", user=data_team)
    DatasetExport.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - timedelta(days=7, minutes=1)
    )
    DatasetExport.objects.filter(pk=recent.pk).update(
        finished_at=timezone.now() - timedelta(days=6, hours=23)
    )
    old_path = Path(settings.MEDIA_ROOT) / old.file_name
    recent_path = Path(settings.MEDIA_ROOT) / recent.file_name

    out = io.StringIO()
    call_command("remove_expired_exports", stdout=out)
    assert out.getvalue().strip() == "removed 1 export zips older than 7 days"
    assert not old_path.exists() and recent_path.exists()
    old.refresh_from_db()
    assert old.removed_at is not None and not old.is_downloadable
    assert services.remove_expired_exports() == 0  # already removed: nothing twice

    client.force_login(data_team)
    status = client.get(f"/datasets/exports/{old.pk}/").json()
    assert status["download_url"] is None and status["removed_at"]
    answer = client.get(f"/datasets/exports/{old.pk}/download/")
    assert answer.status_code == 404
    assert client.get(f"/datasets/exports/{recent.pk}/download/").status_code == 200
    page = client.get(f"/datasets/{version.pk}/").content.decode()
    assert "export again" in page


def test_a_finished_export_clears_out_the_expired_ones(
    version, data_team, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=True):
        old, _ = dispatch.start_export(version=version, fmt="coco", user=data_team)
    DatasetExport.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=30))
    with django_capture_on_commit_callbacks(execute=True):
        dispatch.start_export(version=version, fmt="yolo", user=data_team)
    assert not (Path(settings.MEDIA_ROOT) / old.file_name).exists()
    assert DatasetExport.objects.get(pk=old.pk).removed_at is not None


def test_runs_a_killed_worker_left_are_failed_and_their_files_removed(
    version, other_line, data_team, settings, tmp_path
):
    """A worker killed mid-run leaves a "running" record, its upload and a half-written zip;
    live work beside it (a fresh heartbeat, a young file) is left alone."""
    import os
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from datasets.models import DatasetImport

    # a media folder of its own: the live files it keeps must not reach other tests
    settings.MEDIA_ROOT = media = tmp_path / "media"
    (media / "imports").mkdir(parents=True)
    (media / "exports").mkdir(parents=True)
    long_ago = timezone.now() - services.STALE_AFTER - timedelta(minutes=1)

    def file(name: str, *, old: bool) -> Path:
        path = media / name
        path.write_bytes(b"partial")
        if old:
            os.utime(path, (long_ago.timestamp(), long_ago.timestamp()))
        return path

    killed = DatasetImport.objects.create(
        line=other_line,
        format="coco",
        archive_name="a.zip",
        archive_file="imports/killed.zip",
        created_by=data_team,
        state=ExportImportState.RUNNING,
    )
    live = DatasetImport.objects.create(
        line=other_line,
        format="coco",
        archive_name="b.zip",
        archive_file="imports/live.zip",
        created_by=data_team,
        state=ExportImportState.RUNNING,
    )
    DatasetImport.objects.filter(pk=killed.pk).update(updated_at=long_ago)
    killed_zip, live_zip = file("imports/killed.zip", old=True), file("imports/live.zip", old=True)
    stray_zip = file("imports/never-recorded.zip", old=True)
    dead_part = file("exports/.export-dead.part", old=True)
    writing_part = file("exports/.export-writing.part", old=False)
    stuck = DatasetExport.objects.create(
        version=version, format="coco", state=ExportImportState.RUNNING, file_name="exports/x.zip"
    )
    DatasetExport.objects.filter(pk=stuck.pk).update(updated_at=long_ago)

    out = io.StringIO()
    call_command("clean_up_orphans", stdout=out)
    assert out.getvalue().strip() == "2 stopped runs failed, 3 orphaned files removed"
    killed.refresh_from_db()
    stuck.refresh_from_db()
    assert (killed.state, killed.archive_file) == ("failed", "")
    assert "worker stopped" in killed.error and stuck.state == "failed"
    assert DatasetImport.objects.get(pk=live.pk).state == "running"
    assert not killed_zip.exists() and not stray_zip.exists() and not dead_part.exists()
    assert live_zip.exists() and writing_part.exists()
    assert services.clean_up_orphans() == {"failed": 0, "files": 0}  # safe to repeat
