"""Recording figures in a process: what counts as an empty output, a figure that cannot be
written never costs a station its answer, and a scrape forgets killed processes' gauges."""

import math
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from rest_framework.test import APIClient

from inspection import services
from inspection.models import Inspection
from loupe.common import metrics
from tests.helpers import image_bytes
from tests.metrics.conftest import Scrape


def empty_outputs(model_version: str) -> float:
    return metrics.EMPTY_OUTPUTS.labels("line-e", "cam-e", model_version)._value.get()


@pytest.mark.parametrize(
    ("probability", "regions", "empty"),
    [
        (0.9, 0, True),  # judged defective, nowhere to point at
        (0.9, 2, False),
        (0.1, 0, False),  # a good item has no region
        (math.nan, 0, True),
        (1.5, 1, True),
        (None, 0, True),
    ],
)
def test_an_empty_output_names_no_region_for_a_defect_or_has_no_probability(
    probability, regions, empty
):
    version = f"v-{probability}-{regions}"
    token = metrics.current_station.set(("line-e", "cam-e"))
    try:
        metrics.record_inference(
            model_version=version, seconds=0.01, probability=probability,
            region_count=regions, threshold=0.6,
        )  # fmt: skip
    finally:
        metrics.current_station.reset(token)
    assert empty_outputs(version) == (1.0 if empty else 0.0)
    assert metrics.MODEL_SECONDS.labels("line-e", "cam-e", version)._sum.get() == 0.01


@pytest.mark.django_db(transaction=True)
def test_a_figure_that_cannot_be_written_costs_the_station_nothing(monkeypatch, caplog):
    line = services.create_line(name="line-broken-metrics", level="human_only")
    _, token = services.create_station(line=line, name="cam")

    def unwritable(*labels):
        raise OSError(28, "No space left on device")

    for family in (metrics.STATION_REQUESTS, metrics.RECEIVE_SECONDS, metrics.REQUEST_SECONDS):
        monkeypatch.setattr(family, "labels", unwritable)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    upload = SimpleUploadedFile("part.png", image_bytes(), content_type="image/png")
    response = client.post(
        "/api/v1/inspections/", {"image": upload, "external_id": "SN-1"}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["decision"] == "review"
    assert Inspection.objects.count() == 1
    assert "could not record a metric" in caplog.text


def write_file(path, metric: str, labels: dict, value: float) -> None:
    stored = MmapedDict(str(path))
    stored.write_value(
        mmap_key(metric, metric, list(labels), list(labels.values()), "doc"), value, 0.0
    )
    stored.close()


@pytest.mark.django_db
def test_a_scrape_forgets_the_live_gauges_of_a_killed_process_and_keeps_its_counts(
    client, settings, tmp_path
):
    settings.LOUPE_METRICS_DIR = tmp_path
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid
    folder = tmp_path / "worker-test@host"
    folder.mkdir()
    queue = {"queue": "inference"}
    write_file(folder / f"gauge_livesum_{dead}.db", "loupe_worker_processes", queue, 1.0)
    write_file(
        folder / f"counter_{dead}.db",
        "loupe_worker_busy_seconds_total",
        {**queue, "task": "inspection.predict"},
        2.5,
    )
    figures = Scrape(client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode())
    assert not (folder / f"gauge_livesum_{dead}.db").exists()
    assert figures.value("loupe_worker_processes", queue="inference") == 0
    assert figures.value("loupe_worker_busy_seconds_total", queue="inference") == 2.5
