"""Stations over real HTTP, a real Celery worker process, PostgreSQL and Redis."""

import shutil
from datetime import timedelta

import pytest
import requests
from django.conf import settings
from django.db.models import F

from inspection import services
from inspection.models import Decision, Inspection, Prediction, ReviewItem
from ml import services as ml_services
from review.services import decide_review_item
from tests.helpers import image_bytes

pytestmark = pytest.mark.django_db(transaction=True)

ALWAYS_ACCEPT = dict(accept_threshold=0.9999, reject_threshold=1.0)
ALWAYS_REJECT = dict(accept_threshold=0.0, reject_threshold=0.0001)
ALWAYS_UNSURE = dict(accept_threshold=0.0, reject_threshold=1.0)


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("flow")
    yield worker
    worker.stop()


@pytest.fixture
def real_model(trained_artifact, settings):
    from ml.services import register_model_version

    target = settings.LOUPE_MODEL_DIR / "tiny.pt"
    if not target.exists():
        shutil.copy(trained_artifact, target)
    return register_model_version(artifact=target, name="tiny")


@pytest.fixture
def station(live_server, real_model, worker):
    def make(level, **line_kwargs):
        line = services.create_line(name=f"line-{level}", level=level, **line_kwargs)
        ml_services.set_active_version(line=line, model_version=real_model, changed_by="test")
        _, token = services.create_station(line=line, name="cam-1")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        return session, f"{live_server.url}/api/v1/inspections/"

    return make


def post(session, url, external_id="SN-1", data=None):
    files = {"image": ("part.png", data or image_bytes(), "image/png")}
    return session.post(url, files=files, data={"external_id": external_id}, timeout=30)


def test_human_only_reviews_every_item_without_the_worker(station, worker):
    session, url = station("human_only")
    response = post(session, url)
    assert response.status_code == 201
    assert response.json()["decision"] == "review"
    assert Prediction.objects.count() == 0
    assert "Task inspection.predict[" not in worker.text()


def test_shadow_records_the_model_and_the_agreement_when_a_human_decides(
    station, django_user_model
):
    session, url = station("shadow", latency_budget_ms=10000)
    body = post(session, url).json()
    assert (body["decision"], body["defect_probability"]) == ("review", None)
    inspection = Inspection.objects.get(pk=body["id"])
    prediction = Prediction.objects.get(inspection=inspection)
    item = decide_review_item(
        item=inspection.review_item,
        inspector=django_user_model.objects.create_user("ina"),
        outcome="reject",
    )
    assert item.model_agrees is (prediction.defect_probability >= inspection.reject_threshold)
    polled = session.get(f"{url}{inspection.pk}/", timeout=10).json()
    assert polled["decision"] == "review"  # still undoable by the inspector
    passed = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)  # as if the window had passed
    Decision.objects.filter(inspection=inspection).update(
        decided_at=F("decided_at") - passed, final_at=F("final_at") - passed
    )
    polled = session.get(f"{url}{inspection.pk}/", timeout=10).json()
    assert (polled["decision"], polled["decided_by"]) == ("reject", "human")


def test_assist_returns_the_model_regions_and_reviews(station):
    # no blind sample: this item must show the model
    session, url = station("assist", latency_budget_ms=10000, audit_fraction=0.0)
    body = post(session, url).json()
    assert body["decision"] == "review"
    prediction = Prediction.objects.get(inspection_id=body["id"])
    assert body["defect_probability"] == round(prediction.defect_probability, 4)
    assert body["regions"] == prediction.regions
    assert ReviewItem.objects.get(inspection_id=body["id"]).shows_model is True


@pytest.mark.parametrize(
    ("thresholds", "decision"),
    [(ALWAYS_ACCEPT, "accept"), (ALWAYS_REJECT, "reject"), (ALWAYS_UNSURE, "review")],
)
def test_partial_decides_when_confident(station, thresholds, decision):
    # no audit draw: a confident item must be the model's alone
    session, url = station("partial", latency_budget_ms=10000, audit_fraction=0.0, **thresholds)
    body = post(session, url).json()
    assert body["decision"] == decision
    assert body["decided_by"] == (None if decision == "review" else "model")
    assert body["latency_ms"] > 0


def test_full_decides_and_audits_a_deterministic_sample(station):
    session, url = station("full", latency_budget_ms=10000, audit_fraction=1.0, **ALWAYS_REJECT)
    body = post(session, url).json()
    assert (body["decision"], body["decided_by"]) == ("reject", "model")
    assert ReviewItem.objects.get(inspection_id=body["id"]).reason == "audit"


def test_a_retried_post_creates_no_second_task_or_decision(station, worker):
    session, url = station("full", latency_budget_ms=10000, **ALWAYS_ACCEPT)
    first = post(session, url, "SN-RETRY")
    again = post(session, url, "SN-RETRY")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert (Inspection.objects.count(), Prediction.objects.count(), Decision.objects.count()) == (
        1,
        1,
        1,
    )
    task = f"inspection.predict:{first.json()['id']}"
    assert worker.text().count(f"[{task}] received") == 1


def test_a_missed_budget_gives_the_fail_safe_and_the_late_result_is_recorded(station, worker):
    session, url = station("full", latency_budget_ms=1, **ALWAYS_ACCEPT)
    body = post(session, url).json()
    assert (body["decision"], body["fail_safe_reason"]) == ("review", "budget_missed")
    worker.wait_for_log(f"inspection.predict:{body['id']}] succeeded", timeout=20)
    prediction = Prediction.objects.get(inspection_id=body["id"])
    assert prediction.is_late is True
    assert not Decision.objects.filter(inspection_id=body["id"]).exists()
    assert ReviewItem.objects.get(inspection_id=body["id"]).reason == "fail_safe"
