"""The retraining pipeline through a real Celery worker process (PostgreSQL, Redis), and a
promotion while that worker judges the line's items: none is dropped, and the worker
switches versions without a restart."""

import time

import pytest

from inspection import services as inspection_services
from inspection import tasks as inspection_tasks
from inspection.images import validate_image
from inspection.models import Inspection, InspectionStatus
from ml import pipeline, services
from ml.models import PipelineRunState, StepState
from tests.helpers import image_bytes
from tests.ml_registry.conftest import TINY_RUN

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def worker(start_worker):
    # One process both trains and judges items, as a small plant server would.
    worker = start_worker("training", queues="inference,training")
    yield worker
    worker.stop()


@pytest.fixture
def line(worker, model_version, tmp_path):
    """A full-automation line serving the tiny model, with 60 labeled generated images."""
    from django.contrib.auth import get_user_model

    from demo.loop_scenario import truth_of
    from labeling.services import save_annotation
    from ml.engine.dataset import load_coco_folder
    from ml.engine.generator import SurfaceConfig, generate_dataset

    line = inspection_services.create_line(
        name="press-int", level="human_only", latency_budget_ms=60_000
    )
    services.set_active_version(line=line, model_version=model_version, changed_by="test")
    station, _ = inspection_services.create_station(line=line, name="cam-1")
    inspector = get_user_model().objects.create_user("ines-int")
    generate_dataset(tmp_path, count=60, seed=5, config=SurfaceConfig(size=64))
    for i, sample in enumerate(load_coco_folder(tmp_path)):
        image = validate_image(sample.path.read_bytes(), max_bytes=10**7, max_pixels=10**8)
        inspection, _ = inspection_services.receive_inspection(
            station=station, external_id=f"L-{i}", image=image, metadata={}
        )
        image_label, boxes = truth_of(sample)
        save_annotation(
            inspection=inspection, author=inspector, image_label=image_label, boxes=boxes
        )
    inspection_services.set_line_level(line=line, level="full", changed_by="test")
    line.refresh_from_db()
    return line


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(what)


def send_items(line, prefix: str, count: int) -> list[int]:
    """Items received and queued for the worker, as the station API does, without waiting."""
    station = line.stations.get()
    ids = []
    for i in range(count):
        image = validate_image(image_bytes(seed=i), max_bytes=10**7, max_pixels=10**8)
        inspection, _ = inspection_services.receive_inspection(
            station=station,
            external_id=f"{prefix}-{i}",
            image=image,
            metadata={},
            on_created=lambda item: inspection_tasks.enqueue_prediction(item.pk),
        )
        ids.append(inspection.pk)
    return ids


def test_a_run_goes_through_the_worker_and_its_candidate_takes_over_without_a_restart(
    line, worker, model_version
):
    run = pipeline.start_run(line=line, config=TINY_RUN)
    wait(
        lambda: (
            run.__class__.objects.get(pk=run.pk).state
            in (PipelineRunState.SUCCEEDED, PipelineRunState.FAILED)
        ),
        timeout=300,
        what=f"run {run.pk} did not finish:\n{worker.text()[-3000:]}",
    )
    run.refresh_from_db()
    assert run.state == PipelineRunState.SUCCEEDED, run.error
    assert set(run.steps.values_list("state", flat=True)) == {StepState.SUCCEEDED}
    assert "ml.run_pipeline_step" in worker.text()
    candidate = run.candidate
    assert candidate.parent == model_version  # warm start from the active model
    assert candidate.evaluation["test"]["active"] is not None

    pid = worker.process.pid
    first = send_items(line, "A", 8)
    services.promote_model_version(
        model_version=candidate, changed_by="sam", expected_active=model_version
    )
    second = send_items(line, "B", 8)
    items = Inspection.objects.filter(pk__in=first + second)
    wait(
        lambda: not items.filter(status=InspectionStatus.RECEIVED).exists(),
        timeout=120,
        what=f"items left unrouted:\n{worker.text()[-3000:]}",
    )
    for inspection in items:
        assert inspection.fail_safe_reason == ""
        assert inspection.predictions.count() == 1
    used = {
        i.pk: i.predictions.get().model_version_id for i in Inspection.objects.filter(pk__in=second)
    }
    assert set(used.values()) == {candidate.pk}  # every item after the promotion
    assert worker.process.poll() is None and worker.process.pid == pid
