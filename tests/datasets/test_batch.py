"""Batch predictions: upload a zip, the line's active model predicts every image (tasks run
in-process here; tests/integration/test_batch_worker.py has the real worker on its queue),
results as CSV and JSON, and the images sent to the labeling queue as offline items."""

import csv
import io
import json
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from datasets import batch, batch_results
from datasets.models import BatchImage, BatchPrediction
from inspection import console, decisions
from inspection.models import Inspection, InspectionStatus, Prediction, PredictionRole
from inspection.services import BATCH_STATION
from labeling.models import QueueEntry
from tests.datasets.conftest import make_zip, png


@pytest.fixture(autouse=True)
def own_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def served_line(line, model_version):
    from ml.services import set_active_version

    set_active_version(line=line, model_version=model_version, changed_by="test")
    line.refresh_from_db()
    return line


GOOD = {
    "a.png": png(seed=1),
    "nested/b.png": png(seed=2, size=(96, 80)),
    "nested/deeper/c.jpg": png(seed=3),  # a PNG named .jpg is validated by content
}


def archive(extra=None) -> bytes:
    return make_zip(
        {**GOOD, "notes.txt": b"hello", "broken.png": b"\x89PNG not really", **(extra or {})}
    )


def upload(client, user, line, content: bytes, name="shots.zip", capture=None):
    client.force_login(user)
    data = {"line": line.pk, "archive": SimpleUploadedFile(name, content, "application/zip")}
    if capture is None:
        return client.post(reverse("datasets:batches"), data)
    with capture(execute=True):
        return client.post(reverse("datasets:batches"), data)


@pytest.fixture
def finished(client, data_team, served_line, django_capture_on_commit_callbacks):
    response = upload(
        client, data_team, served_line, archive(), capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    return BatchPrediction.objects.get()


def stored_files(media: Path) -> list[Path]:
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


# A batch, end to end ------------------------------------------------------------------------


def test_an_uploaded_zip_is_predicted_and_every_file_is_accounted_for(client, finished, own_media):
    assert (finished.state, finished.total, finished.done, finished.failed_count) == (
        "done",
        5,
        5,
        2,
    )
    assert finished.model_version == finished.line.active_model
    assert finished.archive_file == "" and not list((own_media / "batches").glob("*"))
    rows = {row.name: row for row in finished.images.all()}
    assert set(rows) == {*GOOD, "notes.txt", "broken.png"}
    for name in GOOD:
        assert 0.0 <= rows[name].defect_probability <= 1.0 and rows[name].error == ""
        assert (own_media / rows[name].image).is_file()
    assert (rows["nested/b.png"].width, rows["nested/b.png"].height) == (96, 80)
    assert rows["notes.txt"].error == batch.NOT_AN_IMAGE
    assert "not a recognised image" in rows["broken.png"].error
    assert rows["broken.png"].defect_probability is None
    page = client.get(reverse("datasets:batch-detail", args=[finished.pk])).content.decode()
    assert (
        "results.csv" in page and "nested/deeper/c.jpg" in page and "not a recognised image" in page
    )
    status = client.get(reverse("datasets:batch-status", args=[finished.pk])).json()
    assert (status["state"], status["done"], status["total"], status["failed"]) == ("done", 5, 5, 2)


def test_results_download_as_csv_and_json_with_the_models_regions(client, finished):
    response = client.get(reverse("datasets:batch-csv", args=[finished.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert f"batch-{finished.pk}-shots-results.csv" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["name"] for row in rows] == [
        "a.png",
        "nested/b.png",
        "nested/deeper/c.jpg",
        "notes.txt",
        "broken.png",
    ]
    stored = {image.name: image for image in finished.images.all()}
    for row in rows[:3]:
        image = stored[row["name"]]
        assert float(row["defect_probability"]) == pytest.approx(image.defect_probability)
        assert json.loads(row["regions"]) == image.regions
        assert int(row["region_count"]) == len(image.regions)
        assert row["model_label"] == batch_results.model_label(image) != ""
        assert row["sha256"] == image.sha256
    assert rows[3]["error"] == batch.NOT_AN_IMAGE and rows[3]["defect_probability"] == ""

    response = client.get(reverse("datasets:batch-json", args=[finished.pk]))
    data = json.loads(b"".join(response.streaming_content))
    assert (data["id"], data["state"], data["line"]) == (finished.pk, "done", "line-a")
    assert [image["name"] for image in data["images"]] == [row["name"] for row in rows]
    assert data["images"][0]["regions"] == stored["a.png"].regions
    assert data["images"][4]["defect_probability"] is None


def test_results_of_an_unfinished_batch_are_refused_in_words(client, data_team, served_line):
    response = upload(client, data_team, served_line, archive())  # no worker ran it
    record = BatchPrediction.objects.get()
    assert response.status_code == 302 and record.state == "queued"
    for name in ("datasets:batch-csv", "datasets:batch-json"):
        refused = client.get(reverse(name, args=[record.pk]))
        assert refused.status_code == 409
        assert refused.json()["detail"] == "the batch is queued; its results come when done"
    refused = client.post(
        reverse("datasets:batch-labeling", args=[record.pk]),
        {"which": "all"},
        content_type="application/json",
    )
    assert refused.status_code == 409


def test_a_repeated_run_does_nothing(finished):
    before = list(finished.images.values_list("defect_probability", "error"))
    batch.run_batch(batch_id=finished.pk)
    finished.refresh_from_db()
    assert (finished.state, finished.done) == ("done", 5)
    assert list(finished.images.values_list("defect_probability", "error")) == before


def test_an_image_over_the_pixel_limit_is_refused_alone(
    client, data_team, served_line, settings, django_capture_on_commit_callbacks
):
    settings.LOUPE_MAX_IMAGE_PIXELS = 100 * 100
    content = make_zip(
        {"small.png": png(seed=4, size=(64, 48)), "huge.png": png(seed=5, size=(400, 300))}
    )
    upload(client, data_team, served_line, content, capture=django_capture_on_commit_callbacks)
    rows = {row.name: row for row in BatchImage.objects.all()}
    assert rows["small.png"].defect_probability is not None
    assert (
        rows["huge.png"].error == "the image is 400x300 = 120000 pixels; the limit is 10000 pixels"
    )
    assert rows["huge.png"].image == ""
    assert BatchPrediction.objects.get().state == "done"


def test_a_model_that_cannot_be_loaded_fails_the_batch_and_says_why(
    client, data_team, served_line, model_version, django_capture_on_commit_callbacks, own_media
):
    Path(model_version.artifact_file).write_bytes(b"tampered")
    try:
        upload(
            client, data_team, served_line, archive(), capture=django_capture_on_commit_callbacks
        )
    finally:
        Path(model_version.artifact_file).unlink()  # the next test copies the artifact again
    record = BatchPrediction.objects.get()
    assert record.state == "failed"
    assert record.error.startswith("model tiny:")
    assert record.archive_file == "" and not list((own_media / "batches").glob("*"))


# Bad archives -------------------------------------------------------------------------------


LINK = make_zip({"a.png": png(), "link.png": b"/etc/passwd"}, symlinks={"link.png"})


@pytest.mark.parametrize(
    ("content", "limits", "status", "says"),
    [
        (b"not a zip at all", {}, 422, "the file is not a zip archive"),
        (
            make_zip({"a.png": png(), "../evil.png": png()}),
            {},
            422,
            "path leaves the archive folder",
        ),
        (make_zip({"a.png": png(), "/abs/evil.png": png()}), {}, 422, "absolute path"),
        (make_zip({"a.png": png(), "dir\\evil.png": png()}), {}, 422, "backslash in the path"),
        (LINK, {}, 422, "symbolic link"),
        (
            make_zip({"a.png": png(), "b.png": png(1), "c.png": png(2)}),
            {"LOUPE_IMPORT_MAX_FILES": 2},
            422,
            "the limit is 2",
        ),
        (
            make_zip({"a.png": png(), "b.png": png(1)}),
            {"LOUPE_IMPORT_MAX_UNPACKED_BYTES": 100},
            422,
            "unpacks to",
        ),
        (
            make_zip({"readme.txt": b"x", "data.csv": b"1,2"}),
            {},
            422,
            "no .png, .jpg or .jpeg file found",
        ),
        (
            make_zip({"a.png": png()}),
            {"LOUPE_IMPORT_MAX_BYTES": 50},
            422,
            "; the limit is 50 bytes",
        ),
    ],
    ids=[
        "not-zip",
        "dotdot",
        "absolute",
        "backslash",
        "symlink",
        "count",
        "bomb",
        "no-image",
        "size",
    ],
)
def test_a_bad_archive_is_refused_in_words_and_nothing_is_kept(
    client,
    data_team,
    served_line,
    settings,
    own_media,
    content,
    limits,
    status,
    says,
    django_capture_on_commit_callbacks,
):
    for name, value in limits.items():
        setattr(settings, name, value)
    response = upload(
        client, data_team, served_line, content, capture=django_capture_on_commit_callbacks
    )
    assert response.status_code == status
    assert says in response.content.decode()
    assert not BatchPrediction.objects.exists() and not BatchImage.objects.exists()
    assert stored_files(own_media) == []


def test_a_line_without_a_model_cannot_start_a_batch(client, data_team, line, own_media):
    response = upload(client, data_team, line, archive())
    assert response.status_code == 422
    assert "line line-a has no active model to predict with" in response.content.decode()
    assert not BatchPrediction.objects.exists() and stored_files(own_media) == []


def test_an_upload_over_the_limit_is_refused_from_its_header(
    client, data_team, served_line, settings, own_media
):
    settings.LOUPE_IMPORT_MAX_BYTES = 1000
    response = upload(client, data_team, served_line, b"x" * (1024 * 1024 + 2000))
    assert response.status_code == 413
    assert "the archive is over 1000 bytes" in response.content.decode()
    assert not BatchPrediction.objects.exists() and stored_files(own_media) == []


# Into the labeling queue --------------------------------------------------------------------


def send(client, record, **body):
    return client.post(
        reverse("datasets:batch-labeling", args=[record.pk]), body, content_type="application/json"
    )


def test_sent_images_become_offline_items_with_the_models_boxes_on_the_queue(client, finished):
    response = send(client, finished, which="all")
    assert response.status_code == 200, response.content
    assert response.json() == {"selected": 3, "queued": 3, "sent_to_labeling": 3}
    items = Inspection.objects.filter(line=finished.line)
    assert items.count() == 3
    for image in finished.images.filter(error=""):
        inspection = image.inspection
        assert (inspection.station.name, inspection.station.is_enabled) == (BATCH_STATION, False)
        assert inspection.status == InspectionStatus.OFFLINE
        assert inspection.external_id == f"batch:{image.sha256}"
        assert (inspection.image.name, inspection.width) == (image.image, image.width)
        assert inspection.metadata == {
            "batch": {"id": finished.pk, "source": "shots.zip", "file": image.name}
        }
        assert inspection.model_version == finished.model_version
        prediction = inspection.predictions.get()
        assert (prediction.role, prediction.model_version) == (
            PredictionRole.PRIMARY,
            finished.model_version,
        )
        assert (prediction.defect_probability, prediction.regions) == (
            image.defect_probability,
            image.regions,
        )
        assert not hasattr(inspection, "decision") or inspection.decision is None
    entries = QueueEntry.objects.filter(line=finished.line)
    assert sorted(entries.values_list("kind", flat=True)) == ["batch"] * 3
    assert entries.first().details == {"batch": finished.pk, "source": "shots.zip"}
    # the label editor opens on the model's proposal
    inspection = finished.images.get(name="a.png").inspection
    page = client.get(reverse("labeling:label", args=[inspection.pk]))
    assert page.status_code == 200
    assert page.context["editor"]["model_regions"] == finished.images.get(name="a.png").regions

    again = send(client, finished, which="all")
    assert again.json() == {"selected": 3, "queued": 0, "sent_to_labeling": 3}
    assert items.count() == 3 and Prediction.objects.count() == 3 and entries.count() == 3


def test_only_the_selected_probabilities_are_sent(client, finished):
    probabilities = dict(finished.images.filter(error="").values_list("name", "defect_probability"))
    low = sorted(probabilities.values())[1]
    response = send(client, finished, which="range", min_probability=low, max_probability=1)
    assert response.json()["selected"] == sum(p >= low for p in probabilities.values()) == 2
    threshold = finished.line.reject_threshold
    response = send(client, finished, which="defective")
    assert response.json()["selected"] == sum(p >= threshold for p in probabilities.values())


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"which": "some"}, "which must be all, defective or range"),
        (
            {"which": "range", "min_probability": "x"},
            "min_probability must be a number from 0 to 1",
        ),
        (
            {"which": "range", "min_probability": 0.9, "max_probability": 0.1},
            "0 <= min_probability",
        ),
    ],
)
def test_a_bad_selection_is_answered_in_words(client, finished, body, says):
    response = send(client, finished, **body)
    assert response.status_code == 400 and says in response.json()["detail"]
    assert not Inspection.objects.exists() and not QueueEntry.objects.exists()


def test_offline_items_stay_out_of_the_lines_figures_and_routing(client, finished, station):
    send(client, finished, which="all")
    assert console.day_counts(finished.line).inspected == 0
    assert console.hourly_inspected(finished.line) == [0] * 24
    assert console.count_agreement_items(finished.line) == 0
    assert decisions.route_overdue_inspections() == 0
    assert set(Inspection.objects.values_list("status", flat=True)) == {"offline"}


# Who sees what ------------------------------------------------------------------------------


def test_another_lines_batch_is_not_found_and_an_inspector_is_refused(
    client, finished, make_user, other_line
):
    outsider = make_user("olga", "data_team", [other_line])
    client.force_login(outsider)
    urls = [
        reverse(name, args=[finished.pk])
        for name in (
            "datasets:batch-detail",
            "datasets:batch-status",
            "datasets:batch-csv",
            "datasets:batch-json",
        )
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert send(client, finished, which="all").status_code == 404
    assert "shots.zip" not in client.get(reverse("datasets:batches")).content.decode()
    refused = upload(client, outsider, finished.line, archive())
    assert refused.status_code == 400 and BatchPrediction.objects.count() == 1
    inspector = make_user("ivan", "inspector", [finished.line])
    client.force_login(inspector)
    assert client.get(reverse("datasets:batches")).status_code == 403
    assert client.get(urls[1]).status_code == 403


# The command --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_command_predicts_a_folder_or_a_zip_and_can_send_to_labeling(
    served_line, data_team, tmp_path, capsys
):
    folder = tmp_path / "shots"
    for name, data in GOOD.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    call_command(
        "predict_batch", "line-a", str(folder), "--user", "dana", "--wait", "--to-labeling", "all"
    )
    out = json.loads(capsys.readouterr().out)
    assert (out["state"], out["total"], out["failed"], out["source_name"]) == (
        "done",
        3,
        0,
        "shots",
    )
    assert out["to_labeling"] == {"selected": 3, "queued": 3}
    assert out["sent_to_labeling"] == 3
    assert BatchPrediction.objects.get().created_by == data_team

    zipped = tmp_path / "more.zip"
    zipped.write_bytes(archive())
    call_command("predict_batch", "line-a", str(zipped), "--wait")
    out = json.loads(capsys.readouterr().out)
    assert (out["state"], out["total"], out["failed"]) == ("done", 5, 2)
    assert zipped.exists()  # the source is left as it was

    with pytest.raises(CommandError, match="no line named"):
        call_command("predict_batch", "nope", str(zipped))
    with pytest.raises(CommandError, match="is neither a folder nor a file"):
        call_command("predict_batch", "line-a", str(tmp_path / "missing"))
    (tmp_path / "bad.zip").write_bytes(make_zip({"../x.png": png()}))
    with pytest.raises(CommandError, match="1 problem"):
        call_command("predict_batch", "line-a", str(tmp_path / "bad.zip"))
    assert BatchPrediction.objects.count() == 2


def test_a_batch_waits_while_a_stations_item_waits_for_its_model(
    make_line, station_with_token, monkeypatch
):
    """Stations first: a received, unrouted item holds the batch back (up to YIELD_MAX_S, so a
    busy line slows a batch and never stops it); one older than LIVE_WINDOW_S is no live item."""
    from datetime import timedelta

    from django.utils import timezone

    from tests.helpers import seed_inspection

    monkeypatch.setattr(batch, "YIELD_MAX_S", 0.3)
    started = time.monotonic()
    batch._wait_for_live_items()
    assert time.monotonic() - started < 0.1
    live_line = make_line(name="press-live", level="shadow")
    item = seed_inspection(station_with_token(live_line)[0], "SN-live")
    assert item.status == InspectionStatus.RECEIVED
    started = time.monotonic()
    batch._wait_for_live_items()
    assert 0.3 <= time.monotonic() - started < 1.0
    Inspection.objects.filter(pk=item.pk).update(received_at=timezone.now() - timedelta(minutes=2))
    started = time.monotonic()
    batch._wait_for_live_items()
    assert time.monotonic() - started < 0.1


def test_a_batch_a_killed_worker_left_running_fails_and_its_files_go(finished, own_media):
    """The next batch's worker clears it: no progress for STALE_AFTER means its worker died."""
    import os
    from datetime import timedelta

    from django.utils import timezone

    archive = own_media / "batches" / "left-by-a-killed-worker.zip"
    archive.write_bytes(b"zip")
    orphan = own_media / "batches" / "uploaded-then-crashed.zip"
    orphan.write_bytes(b"zip")
    fresh = own_media / "batches" / "being-uploaded-now.zip"
    fresh.write_bytes(b"zip")
    long_ago = timezone.now() - batch.STALE_AFTER - timedelta(minutes=1)
    for path in (archive, orphan):
        os.utime(path, (long_ago.timestamp(), long_ago.timestamp()))
    BatchPrediction.objects.filter(pk=finished.pk).update(
        state="running", archive_file="batches/left-by-a-killed-worker.zip", updated_at=long_ago
    )
    assert batch.clean_up_stale_batches() == {"failed": 1, "files": 1}
    finished.refresh_from_db()
    assert (finished.state, finished.error) == (
        "failed",
        "the worker stopped during this batch; start it again",
    )
    assert finished.archive_file == ""
    assert not archive.exists() and not orphan.exists() and fresh.exists()
    assert batch.clean_up_stale_batches() == {"failed": 0, "files": 0}
