"""A mirror challenger over real HTTP, a real worker process, PostgreSQL and Redis: it predicts
on every item after the active model answered, on its own queue, and never reaches a station."""

import time

import pytest
import requests

from inspection import services
from inspection.models import Prediction, PredictionRole
from ml import challengers
from ml import services as ml_services
from tests.helpers import artifact_copies, image_bytes

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("mirror", queues="inference,challenger")
    yield worker
    worker.stop()


@pytest.fixture
def mirrored_station(live_server, trained_artifact, settings, worker):
    """A full-automation line serving the tiny model, a byte-different copy mirroring it."""
    paths = artifact_copies(
        trained_artifact, settings.LOUPE_MODEL_DIR, ("tiny-active.pt", "tiny-mirror.pt")
    )
    # a budget the first item can meet while the worker loads both models
    line = services.create_line(name="mirror-line", level="full", latency_budget_ms=30_000)
    active = ml_services.register_model_version(artifact=paths[0], name="active", line=line)
    ml_services.set_active_version(line=line, model_version=active, changed_by="test")
    challenger = ml_services.register_model_version(artifact=paths[1], name="mirror", line=line)
    challengers.start_challenger(model_version=challenger, mode="mirror", changed_by="test")
    _, token = services.create_station(line=line, name="cam-1")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session, f"{live_server.url}/api/v1/inspections/", active, challenger


def test_the_mirror_challenger_predicts_every_item_and_no_station_sees_it(mirrored_station):
    session, url, active, challenger = mirrored_station
    answers = []
    for number in range(6):
        files = {"image": ("part.png", image_bytes(seed=number), "image/png")}
        response = session.post(url, files=files, data={"external_id": f"M-{number}"}, timeout=30)
        assert response.status_code in (200, 201), response.text
        answers.append(response.json())
    assert {a["model_version"] for a in answers} == {"active"}
    assert all(a["decided_by"] == "model" for a in answers)

    ids = [a["id"] for a in answers]
    deadline = time.monotonic() + 30
    mirrored = 0
    while time.monotonic() < deadline and mirrored < len(ids):
        time.sleep(0.2)
        mirrored = Prediction.objects.filter(
            inspection_id__in=ids, role=PredictionRole.CHALLENGER, model_version=challenger
        ).count()
    assert mirrored == len(ids)
    # one primary prediction each, by the active model; the station's view of an item is unchanged
    primary = Prediction.objects.filter(inspection_id__in=ids, role=PredictionRole.PRIMARY)
    assert sorted(primary.values_list("model_version_id", flat=True)) == [active.pk] * len(ids)
    again = session.get(f"{url}{ids[0]}/", timeout=30).json()
    assert again["model_version"] == "active"
    assert again["defect_probability"] == answers[0]["defect_probability"]


def test_a_challenger_queue_past_its_backlog_is_sampled_down(real_services, settings):
    from inspection import tasks
    from loupe.common import metrics

    # a queue no worker reads, so its messages stay: the broker's count is the backlog
    settings.LOUPE_CHALLENGER_QUEUE = "challenger-backlog-test"
    settings.LOUPE_CHALLENGER_MAX_BACKLOG = 2
    tasks._backlog["checked_at"] = float("-inf")
    sent = [tasks.enqueue_challenger_prediction(number) for number in range(3)]
    assert sent == [True, True, True]  # the first count, 0, holds for a second
    skipped_before = metrics.CHALLENGER_SKIPPED._value.get()
    tasks._backlog["checked_at"] = float("-inf")
    assert tasks.challenger_backlog() == 3
    assert tasks.enqueue_challenger_prediction(3) is False
    assert metrics.CHALLENGER_SKIPPED._value.get() == skipped_before + 1
