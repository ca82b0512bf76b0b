"""Exports and imports through HTTP (an API token, as a script would), a real Celery worker
process on the datasets queue, PostgreSQL and Redis; the zips are checked with pycocotools
and by reading the YOLO files back, and a COCO export is imported into another line."""

import io
import time
import zipfile
from pathlib import Path

import pytest
import requests
import yaml
from pycocotools.coco import COCO

from accounts.services import create_user
from accounts.tokens import issue_api_token
from datasets.models import DatasetItem
from inspection import services
from labeling.models import AnnotationRevision
from tests.helpers import seed_inspection

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "export-worker-password-1"
SCRATCH = {"x0": 3.25, "y0": 4.0, "x1": 60.5, "y1": 33.75, "label": "scratch"}
SPOT = {"x0": 0.01, "y0": 100.2, "x1": 127.99, "y1": 128.0, "label": "spot"}


@pytest.fixture(scope="module")
def worker(start_worker):
    # Exports go to their own queue, as production's export worker takes them.
    worker = start_worker("datasets", queues="datasets")
    yield worker
    worker.stop()


@pytest.fixture
def script(live_server, worker):
    """A requests session with the API token of a data-team member of line-x, and labeled items."""
    line = services.create_line(name="line-x")
    station, _ = services.create_station(line=line, name="cam-1")
    user = create_user(username="dana", role="data_team", line_names=["line-x"], password=PASSWORD)
    labels = [("defective", [SCRATCH]), ("defective", [SCRATCH, SPOT]), ("ok", []), ("ok", [])]
    for index, (image_label, boxes) in enumerate(labels):
        AnnotationRevision.objects.create(
            inspection=seed_inspection(station, f"SN-{index}"),
            number=1,
            author=user,
            image_label=image_label,
            boxes=boxes,
            source="human",
        )
    _, raw_token = issue_api_token(user=user, name="worker test")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {raw_token}"
    yield session, live_server.url
    # closing the keep-alive socket lets the live server close its database connection
    session.close()


def wait_until_finished(session, url: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = session.get(url, timeout=10).json()
        if status["state"] in ("done", "failed"):
            return status
        time.sleep(0.2)
    raise TimeoutError(f"export not finished after {timeout}s: {status}")


def export(session, base: str, version_id: int, fmt: str) -> dict:
    started = session.post(
        f"{base}/api/v1/datasets/{version_id}/exports/", json={"format": fmt}, timeout=10
    )
    assert started.status_code == 202, started.text
    return wait_until_finished(session, base + started.json()["status_url"])


def test_exports_written_by_a_worker_load_and_read_back(script, worker, tmp_path):
    session, base = script
    frozen = session.post(f"{base}/api/v1/datasets/", json={"name": "w1"}, timeout=30)
    assert frozen.status_code == 201, frozen.text
    version = frozen.json()
    expected = {
        item.inspection_id: [(b["x0"], b["y0"], b["x1"], b["y1"], b["label"]) for b in item.boxes]
        for item in DatasetItem.objects.filter(version_id=version["id"])
    }

    status = export(session, base, version["id"], "coco")
    assert (status["state"], status["done"], status["total"]) == ("done", 4, 4)
    download = session.get(base + status["download_url"], timeout=30)
    assert download.status_code == 200
    zipfile.ZipFile(io.BytesIO(download.content)).extractall(tmp_path / "coco")
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    read_back = {
        image_id: [
            (x, y, x + w, y + h, names[a["category_id"]])
            for a in coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            for x, y, w, h in [a["bbox"]]
        ]
        for image_id in coco.getImgIds()
    }
    assert read_back == expected  # exactly; defect-free images are there, with no annotation

    status = export(session, base, version["id"], "yolo")
    assert status["state"] == "done"
    archive = zipfile.ZipFile(io.BytesIO(session.get(base + status["download_url"]).content))
    classes = yaml.safe_load(archive.read("data.yaml"))["names"]
    read_back = {}
    for item in DatasetItem.objects.filter(version_id=version["id"]):
        assert f"images/{item.split}/{item.inspection_id}.png" in archive.namelist()
        boxes = []
        for line in archive.read(f"labels/{item.split}/{item.inspection_id}.txt").splitlines():
            cls, cx, cy, w, h = line.split()
            cx, w = float(cx) * item.width, float(w) * item.width
            cy, h = float(cy) * item.height, float(h) * item.height
            box = [round(v, 2) for v in (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)]
            boxes.append((*box, classes[int(cls)]))
        read_back[item.inspection_id] = boxes
    assert read_back == expected
    assert "Task datasets.export[" in worker.text()


def upload(session, base: str, line: str, fmt: str, content: bytes) -> dict:
    started = session.post(
        f"{base}/api/v1/datasets/imports/",
        data={"line": line, "format": fmt},
        files={"archive": ("archive.zip", content, "application/zip")},
        timeout=30,
    )
    assert started.status_code == 202, started.text
    return wait_until_finished(session, base + started.json()["status_url"])


def test_a_coco_export_imported_by_a_worker_starts_another_line_with_the_same_labels(
    script, worker, settings
):
    from django.contrib.auth.models import User

    from inspection.models import Inspection

    session, base = script
    services.create_line(name="line-y").members.add(User.objects.get(username="dana"))
    version = session.post(f"{base}/api/v1/datasets/", json={}, timeout=30).json()
    status = export(session, base, version["id"], "coco")
    archive = session.get(base + status["download_url"], timeout=30).content

    status = upload(session, base, "line-y", "coco", archive)
    assert (status["state"], status["created_count"], status["problems"]) == ("done", 4, [])
    imported = {
        inspection.image_sha256: (
            (revision := inspection.annotations.latest("number")).image_label,
            sorted((b["x0"], b["y0"], b["x1"], b["y1"], b["label"]) for b in revision.boxes),
        )
        for inspection in Inspection.objects.filter(line__name="line-y")
    }
    original = {
        inspection.image_sha256: (
            (revision := inspection.annotations.latest("number")).image_label,
            sorted((b["x0"], b["y0"], b["x1"], b["y1"], b["label"]) for b in revision.boxes),
        )
        for inspection in Inspection.objects.filter(line__name="line-x")
    }
    assert imported == original
    assert "Task datasets.import[" in worker.text()

    # a refused archive: every bad file named, nothing created, the upload not kept
    bad = io.BytesIO()
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("ok/broken.png", b"not a png")
        zf.writestr("../escape.png", b"x")
    status = upload(session, base, "line-y", "imagefolder", bad.getvalue())
    assert status["state"] == "failed"
    assert {p["file"] for p in status["problems"]} == {"ok/broken.png", "../escape.png"}
    assert Inspection.objects.filter(line__name="line-y").count() == 4
    assert not list((Path(settings.MEDIA_ROOT) / "imports").glob("*.zip"))


def test_a_failed_export_in_the_worker_leaves_no_file(script, worker, settings):
    session, base = script
    version = session.post(f"{base}/api/v1/datasets/", json={}, timeout=30).json()
    item = DatasetItem.objects.filter(version_id=version["id"]).last()
    DatasetItem.objects.filter(pk=item.pk).update(image="images/00/gone.png")
    status = export(session, base, version["id"], "csv")
    assert status["state"] == "failed"
    assert "missing from storage" in status["error"]
    assert status["download_url"] is None
    exports = Path(settings.MEDIA_ROOT) / "exports"
    assert not [
        p
        for p in exports.iterdir()
        if f"-csv-{status['id']}" in p.name or p.name.startswith(".export-")
    ]
