"""A task that reaches its soft time limit records why it stopped, in a real worker process:
a training worker whose limit is 1 s fails the run's step with the limit and the variable
that sets it, and the worker lives on (the soft limit is not a kill)."""

import time

import pytest

from inspection import services as inspection_services
from inspection.images import validate_image
from ml import pipeline
from ml.models import PipelineRun, PipelineRunState, StepState
from tests.ml_registry.conftest import TINY_RUN

pytestmark = pytest.mark.django_db(transaction=True)

LIMIT_MESSAGE = "stopped at its time limit of 1 s (LOUPE_TRAINING_SOFT_TIME_LIMIT_S)"


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker(
        "time-limits",
        queues="training",
        LOUPE_TRAINING_SOFT_TIME_LIMIT_S="1",
        LOUPE_TRAINING_HARD_TIME_LIMIT_S="60",
    )
    yield worker
    worker.stop()


@pytest.fixture
def labeled_line(tmp_path):
    from django.contrib.auth import get_user_model

    from demo.loop_scenario import truth_of
    from labeling.services import save_annotation
    from ml.engine.dataset import load_coco_folder
    from ml.engine.generator import SurfaceConfig, generate_dataset

    line = inspection_services.create_line(name="press-limits")
    station, _ = inspection_services.create_station(line=line, name="cam-1")
    inspector = get_user_model().objects.create_user("ines-limits")
    generate_dataset(tmp_path, count=60, seed=5, config=SurfaceConfig(size=64))
    for i, sample in enumerate(load_coco_folder(tmp_path)):
        image = validate_image(sample.path.read_bytes(), max_bytes=10**7, max_pixels=10**8)
        inspection, _ = inspection_services.receive_inspection(
            station=station, external_id=f"T-{i}", image=image, metadata={}
        )
        image_label, boxes = truth_of(sample)
        save_annotation(
            inspection=inspection, author=inspector, image_label=image_label, boxes=boxes
        )
    return line


def test_a_step_past_its_soft_limit_is_recorded_failed_and_the_worker_lives_on(
    labeled_line, worker
):
    # training for 50 epochs takes far longer than the 1 s the worker allows a step
    run = pipeline.start_run(line=labeled_line, config={**TINY_RUN, "epochs": 50})
    deadline = time.monotonic() + 120
    while PipelineRun.objects.get(pk=run.pk).state not in (
        PipelineRunState.SUCCEEDED,
        PipelineRunState.FAILED,
    ):
        assert time.monotonic() < deadline, worker.text()[-3000:]
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.state == PipelineRunState.FAILED
    failed = run.steps.get(state=StepState.FAILED)
    assert failed.error == LIMIT_MESSAGE
    assert failed.finished_at is not None
    assert run.error == f"{failed.name}: {LIMIT_MESSAGE}"
    later = run.steps.filter(position__gt=failed.position)
    assert set(later.values_list("state", flat=True)) == {StepState.PENDING}
    assert worker.process.poll() is None  # a soft limit stops the task, not the worker
    assert "Hard time limit" not in worker.text()
