"""A worker killed with SIGKILL mid-task: the task is redelivered and decided exactly once."""

import io
import shutil
import threading

import pytest
import requests
from PIL import Image

from inspection import services
from inspection.models import Decision, Inspection, InspectionStatus, Prediction
from ml import services as ml_services

pytestmark = pytest.mark.django_db(transaction=True)

# Short redelivery timings so the test waits seconds, not the production minutes.
REDELIVERY = {"CELERY_VISIBILITY_TIMEOUT": "4", "CELERY_REDELIVERY_SWEEP_S": "1"}


def large_png() -> bytes:
    """About 36 megapixels: slow enough to decode that the kill lands while the task runs."""
    image = Image.linear_gradient("L").resize((6000, 6000)).convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def test_killed_worker_task_is_redelivered_and_decided_once(
    start_worker, live_server, trained_artifact, settings
):
    from ml.services import register_model_version

    target = settings.LOUPE_MODEL_DIR / "tiny.pt"
    if not target.exists():
        shutil.copy(trained_artifact, target)
    model = register_model_version(artifact=target, name="tiny")
    line = services.create_line(
        name="line-kill",
        level="full",
        accept_threshold=0.0,
        reject_threshold=0.0001,
        latency_budget_ms=120_000,
        audit_fraction=0.0,
    )
    ml_services.set_active_version(line=line, model_version=model, changed_by="test")
    _, token = services.create_station(line=line, name="cam-1")

    first = start_worker("doomed", **REDELIVERY)
    answers = []

    def station_posts():
        response = requests.post(
            f"{live_server.url}/api/v1/inspections/",
            headers={"Authorization": f"Bearer {token}"},
            files={"image": ("big.png", large_png(), "image/png")},
            data={"external_id": "SN-KILL"},
            timeout=120,
        )
        answers.append(response)

    poster = threading.Thread(target=station_posts)
    poster.start()
    first.wait_for_log("Task inspection.predict[", timeout=60, poll=0.005)
    first.kill()

    inspection = Inspection.objects.get(external_id="SN-KILL")
    assert inspection.status == InspectionStatus.RECEIVED, "the kill came after the task ended"
    assert not Prediction.objects.exists()

    second = start_worker("heir", **REDELIVERY)
    poster.join(timeout=120)
    assert answers and answers[0].status_code == 201
    assert (answers[0].json()["decision"], answers[0].json()["decided_by"]) == ("reject", "model")
    assert f"inspection.predict:{inspection.pk}] received" in second.text()
    assert Decision.objects.filter(inspection=inspection).count() == 1
    assert Prediction.objects.filter(inspection=inspection).count() == 1
    second.stop()
