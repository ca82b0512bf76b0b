"""Imports: COCO and ImageFolder zips become labeled inspections of a line, all or nothing;
every bad file is named with its reason; limits and path rules hold."""

import hashlib
import json
from pathlib import Path

import pytest

from datasets import dispatch, exporters, importers
from datasets.importers import IMPORT_STATION, ImportRefused, import_archive
from datasets.models import DatasetImport
from datasets.services import freeze_dataset
from inspection.models import Decision, Inspection, Station
from labeling.models import AnnotationRevision
from tests.datasets.conftest import make_zip, png


@pytest.fixture
def media_files(settings):
    def files() -> set[Path]:
        return set((Path(settings.MEDIA_ROOT) / "images").rglob("*.*"))

    return files


@pytest.fixture
def run(tmp_path, other_line, data_team):
    """run(zip_bytes, fmt) imports into line-b as the data team member."""

    def run_import(data: bytes, fmt: str, line=other_line):
        path = tmp_path / "upload.zip"
        path.write_bytes(data)
        return import_archive(
            path=path, line=line, fmt=fmt, user=data_team, archive_name="upload.zip"
        )

    return run_import


def coco_zip(images, annotations, categories=None, extra=None) -> bytes:
    """images: [(file_name, data, width, height)]; annotations: [(image index, label, bbox)]."""
    categories = categories or ["scratch", "dent"]
    document = {
        "images": [
            {"id": i + 1, "file_name": name, "width": w, "height": h}
            for i, (name, _, w, h) in enumerate(images)
        ],
        "annotations": [
            {
                "id": n + 1,
                "image_id": index + 1,
                "category_id": categories.index(label) + 1,
                "bbox": bbox,
            }
            for n, (index, label, bbox) in enumerate(annotations)
        ],
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(categories)],
    }
    entries = {"annotations.json": json.dumps(document).encode()}
    entries.update({name: data for name, data, _, _ in images if data is not None})
    entries.update(extra or {})
    return make_zip(entries)


def test_a_coco_export_imports_into_another_line_with_the_same_labels(
    labeled, tmp_path, run, other_line, data_team
):
    version = freeze_dataset(filters={})[0]
    archive = tmp_path / "export.zip"
    exporters.write_export(version=version, fmt="coco", dest=archive)
    result = run(archive.read_bytes(), "coco")
    assert result.created == 4
    # the other files of an export are listed as left out, not as problems
    assert {p.file for p in result.skipped} == {
        "annotations_train.json",
        "annotations_val.json",
        "annotations_test.json",
        "manifest.csv",
        "dataset.json",
    }
    imported = {i.image_sha256: i for i in Inspection.objects.filter(line=other_line)}
    for item in version.items.all():
        inspection = imported[item.image_sha256]
        revision = inspection.annotations.get()
        assert (revision.image_label, revision.boxes) == (item.image_label, item.boxes)
        assert (revision.number, revision.source, revision.author) == (1, "human", data_team)
        assert inspection.image.name == item.image  # content-addressed: stored once
        assert inspection.status == "decided" and inspection.automation_level == "human_only"
        decision = inspection.decision
        assert (decision.decided_by, decision.inspector) == ("human", data_team)
        assert decision.outcome == ("accept" if item.image_label == "ok" else "reject")
        assert inspection.metadata["import"]["archive"] == "upload.zip"
    station = Station.objects.get(line=other_line, name=IMPORT_STATION)
    assert not station.is_enabled


def test_imagefolder_classes_become_image_labels(run, other_line):
    archive = make_zip(
        {
            "parts/ok/a.png": png(1),
            "parts/GOOD/b.png": png(2),
            "parts/scratch/c.png": png(3),
            "parts/readme.txt": b"hello",
        }
    )
    result = run(archive, "imagefolder")
    assert result.created == 3
    assert [(p.file, p.reason) for p in result.skipped] == [
        ("parts/readme.txt", "not a .png, .jpg or .jpeg file")
    ]
    labels = {
        r.inspection.metadata["import"]["file"]: (r.image_label, r.boxes)
        for r in AnnotationRevision.objects.filter(inspection__line=other_line)
    }
    assert labels == {
        "parts/ok/a.png": ("ok", []),
        "parts/GOOD/b.png": ("ok", []),
        "parts/scratch/c.png": ("defective", []),
    }
    scratch = Inspection.objects.get(metadata__import__file="parts/scratch/c.png")
    assert scratch.metadata["import"]["class"] == "scratch"


def test_every_bad_file_is_named_with_its_reason_and_nothing_is_kept(run, media_files):
    before = media_files()
    archive = make_zip(
        {
            "ok/good.png": png(4),
            "ok/broken.png": png(5)[:-30],
            "ok/text.png": b"not an image at all",
            "/etc/evil.png": png(6),
            "ok/../../evil.png": png(7),
            "ok/link.png": b"/etc/passwd",
            "loose.png": png(8),
            "ok\\win.png": png(9),
        },
        symlinks={"ok/link.png"},
    )
    with pytest.raises(ImportRefused) as refused:
        run(archive, "imagefolder")
    reasons = {p.file: p.reason for p in refused.value.problems}
    assert set(reasons) == {
        "ok/broken.png",
        "ok/text.png",
        "/etc/evil.png",
        "ok/../../evil.png",
        "ok/link.png",
        "loose.png",
        "ok\\win.png",
    }
    assert reasons["/etc/evil.png"] == "absolute path"
    assert reasons["ok/../../evil.png"] == "path leaves the archive folder (..)"
    assert reasons["ok/link.png"] == "symbolic link"
    assert reasons["loose.png"] == "not inside a class folder (<class>/<image>)"
    assert reasons["ok/broken.png"].startswith("the image is truncated or corrupt")
    assert reasons["ok/text.png"].startswith("the file is not a recognised image")
    assert reasons["ok\\win.png"].startswith("backslash in the path")
    assert Inspection.objects.count() == 0
    assert AnnotationRevision.objects.count() == 0
    assert Station.objects.filter(name=IMPORT_STATION).count() == 0
    assert media_files() == before  # the good image was not stored either


def test_coco_problems_are_named(run):
    good, other = png(10), png(11)
    archive = coco_zip(
        [
            ("images/a.png", good, 64, 48),
            ("images/missing.png", None, 64, 48),
            ("images/b.png", other, 99, 48),
            ("../outside.png", None, 64, 48),
        ],
        [
            (0, "scratch", [1, 2, 10, 10]),
            (0, "scratch", [60, 40, 10, 10]),
            (0, "crackle", [1, 2, 3, 4]),
        ],
        categories=["scratch", "crackle"],
    )
    with pytest.raises(ImportRefused) as refused:
        run(archive, "coco")
    problems = sorted((p.file, p.reason) for p in refused.value.problems)
    assert problems == [
        ("../outside.png", "file_name points outside the archive folder"),
        (
            "annotations.json",
            "annotation 2: bbox [60, 40, 10, 10] is empty or outside the 64x48 image",
        ),
        (
            "annotations.json",
            "annotation 3: class 'crackle' is not one of line line-b's classes "
            "(scratch, dent, spot, crack); add it to the line first",
        ),
        ("images/b.png", "annotations.json says 99x48, the image is 64x48"),
        ("images/missing.png", "named in annotations.json, not in the archive"),
    ]
    assert Inspection.objects.count() == 0


def test_coco_boxes_keep_their_values_on_the_editor_grid(run, other_line):
    archive = coco_zip([("a.png", png(12), 64, 48)], [(0, "dent", [1.004, 2.5, 10.25, 20.0])])
    assert run(archive, "coco").created == 1
    revision = AnnotationRevision.objects.get(inspection__line=other_line)
    assert revision.boxes == [{"x0": 1.0, "y0": 2.5, "x1": 11.25, "y1": 22.5, "label": "dent"}]
    assert revision.image_label == "defective"


def test_importing_the_same_archive_again_creates_nothing(run):
    archive = make_zip({"ok/a.png": png(13), "dent/b.png": png(14)})
    assert run(archive, "imagefolder").created == 2
    again = run(archive, "imagefolder")
    assert again.created == 0
    assert {p.reason for p in again.skipped} == {"already imported to line line-b"}
    assert Inspection.objects.count() == 2


def test_a_repeated_image_is_left_out_unless_its_labels_differ(run):
    same = run(make_zip({"ok/a.png": png(15), "good/a-copy.png": png(15)}), "imagefolder")
    assert same.created == 1
    assert [(p.file, p.reason) for p in same.skipped] == [
        ("good/a-copy.png", "same image as ok/a.png")
    ]
    with pytest.raises(ImportRefused) as refused:
        run(make_zip({"ok/c.png": png(16), "dent/c.png": png(16)}), "imagefolder")
    assert [(p.file, p.reason) for p in refused.value.problems] == [
        ("dent/c.png", "same image as ok/c.png, with other labels")
    ]


@pytest.mark.parametrize(
    ("setting", "value", "reason"),
    [
        ("LOUPE_IMPORT_MAX_FILES", 2, "the archive holds 3 entries; the limit is 2"),
        ("LOUPE_IMPORT_MAX_BYTES", 100, "bytes; the limit is 100 bytes"),
        ("LOUPE_IMPORT_MAX_UNPACKED_BYTES", 100, "the archive unpacks to"),
    ],
)
def test_archive_limits_refuse_the_whole_archive(run, settings, setting, value, reason):
    setattr(settings, setting, value)
    archive = make_zip({"ok/a.png": png(17), "ok/b.png": png(18), "ok/c.png": png(19)})
    with pytest.raises(ImportRefused) as refused:
        run(archive, "imagefolder")
    assert reason in refused.value.problems[0].reason
    assert refused.value.problems[0].file == "upload.zip"
    assert Inspection.objects.count() == 0


def test_image_limits_name_the_file(run, settings):
    settings.LOUPE_MAX_IMAGE_PIXELS = 64 * 48 - 1
    with pytest.raises(ImportRefused) as refused:
        run(make_zip({"ok/a.png": png(20)}), "imagefolder")
    assert refused.value.problems[0].file == "ok/a.png"
    assert "pixels" in refused.value.problems[0].reason
    settings.LOUPE_MAX_IMAGE_BYTES = 10
    with pytest.raises(ImportRefused) as refused:
        run(make_zip({"ok/a.png": png(20)}), "imagefolder")
    assert "the limit is 10 bytes" in refused.value.problems[0].reason


def test_a_file_that_is_not_a_zip_is_refused(run):
    with pytest.raises(ImportRefused, match="not a zip archive"):
        run(b"PK but not really", "coco")


def test_an_archive_without_images_is_refused(run):
    with pytest.raises(ImportRefused, match="no image found"):
        run(make_zip({"notes.txt": b"hi"}), "imagefolder")
    with pytest.raises(ImportRefused, match="exactly one annotations.json; this one has 0"):
        run(make_zip({"ok/a.png": png(21)}), "coco")


def test_a_failure_while_creating_rows_leaves_no_row_and_no_new_file(run, media_files, monkeypatch):
    before = media_files()

    def fail(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(AnnotationRevision.objects, "bulk_create", fail)
    with pytest.raises(RuntimeError):
        run(make_zip({"ok/new1.png": png(22), "dent/new2.png": png(23)}), "imagefolder")
    assert Inspection.objects.count() == 0
    assert Decision.objects.count() == 0
    assert Station.objects.filter(name=IMPORT_STATION).count() == 0
    assert media_files() == before


def test_run_import_records_problems_and_removes_the_upload(
    other_line, data_team, settings, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = SimpleUploadedFile("bad.zip", make_zip({"ok/a.png": b"nope", "ok/b.png": png(24)}))
    with django_capture_on_commit_callbacks(execute=True):
        record = dispatch.start_import(
            line=other_line, fmt="imagefolder", upload=upload, user=data_team
        )
    record.refresh_from_db()
    assert record.state == "failed"
    assert record.problems == [
        {"file": "ok/a.png", "reason": "the file is not a recognised image; send JPEG or PNG"}
    ]
    assert record.problem_count == 1 and record.created_count == 0
    assert record.archive_file == ""
    assert not list((Path(settings.MEDIA_ROOT) / "imports").iterdir())
    good = SimpleUploadedFile("good.zip", make_zip({"ok/b.png": png(24)}))
    with django_capture_on_commit_callbacks(execute=True):
        record = dispatch.start_import(
            line=other_line, fmt="imagefolder", upload=good, user=data_team
        )
    record.refresh_from_db()
    assert (record.state, record.created_count, record.done, record.total) == ("done", 1, 2, 2)
    assert DatasetImport.objects.count() == 2


def test_an_import_the_workers_never_got_fails_and_leaves_no_archive(
    other_line, data_team, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from datasets import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.import_dataset_task, "apply_async", broker_down)
    upload = SimpleUploadedFile("good.zip", make_zip({"ok/b.png": png(24)}))
    with django_capture_on_commit_callbacks(execute=True):
        record = dispatch.start_import(
            line=other_line, fmt="imagefolder", upload=upload, user=data_team
        )
    record.refresh_from_db()
    assert (record.state, record.error) == ("failed", "could not reach the workers; try again")
    assert record.archive_file == ""
    assert not list((Path(settings.MEDIA_ROOT) / "imports").iterdir())


def test_an_oversized_upload_is_refused_before_it_is_kept(other_line, data_team, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.LOUPE_IMPORT_MAX_BYTES = 10
    upload = SimpleUploadedFile("big.zip", b"x" * 11)
    with pytest.raises(ImportRefused, match="the archive is 11 bytes; the limit is 10 bytes"):
        dispatch.start_import(line=other_line, fmt="coco", upload=upload, user=data_team)
    assert DatasetImport.objects.count() == 0
    imports = Path(settings.MEDIA_ROOT) / "imports"
    assert not imports.exists() or not list(imports.iterdir())


def test_the_content_hash_of_an_imported_image_is_its_bytes(run):
    data = png(25)
    run(make_zip({"ok/a.png": data}), "imagefolder")
    assert Inspection.objects.get().image_sha256 == hashlib.sha256(data).hexdigest()
    assert importers.MAX_REPORTED >= 100


def test_coco_inside_a_folder_finds_bare_names_in_images_and_ignores_archiver_junk(run):
    document = {
        "images": [{"id": 7, "file_name": "a.png", "width": 64, "height": 48}],
        "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "bbox": [1, 1, 5, 5]}],
        "categories": [{"id": 3, "name": "spot"}],
    }
    archive = make_zip(
        {
            "mydata/annotations.json": json.dumps(document).encode(),
            "mydata/images/a.png": png(50),
            "__MACOSX/mydata/._a.png": b"junk",
            "mydata/.DS_Store": b"junk",
        }
    )
    result = run(archive, "coco")
    assert (result.created, result.skipped) == (1, [])
    revision = AnnotationRevision.objects.get()
    assert revision.boxes == [{"x0": 1.0, "y0": 1.0, "x1": 6.0, "y1": 6.0, "label": "spot"}]
    assert revision.inspection.metadata["import"]["file"] == "mydata/images/a.png"


def test_malformed_coco_entries_are_problems_not_crashes(run):
    document = {
        "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 48}, "nonsense"],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": [1], "bbox": [1, 1, 5, 5]},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 1, "wide", 5]},
        ],
        "categories": [{"id": 1, "name": "dent"}],
    }
    archive = make_zip({"annotations.json": json.dumps(document).encode(), "a.png": png(51)})
    with pytest.raises(ImportRefused) as refused:
        run(archive, "coco")
    assert sorted(p.reason for p in refused.value.problems) == [
        "annotation 1: unknown category_id [1]",
        "annotation 2: bbox values must be numbers",
        "malformed image entry nonsense",
    ]
