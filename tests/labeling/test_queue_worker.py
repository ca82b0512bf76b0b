"""The labeling queue's refresh run by a real Celery worker on the datasets queue (PostgreSQL,
Redis, the tiny trained model): the page's button sends it there, a worker that only takes
station work never runs it."""

import time

import pytest

from inspection import services
from labeling import tasks
from labeling.models import QueueEntry, QueueRefresh
from tests.helpers import seed_inspection

# the integration suite's real services and workers (tests/integration/conftest.py)
from tests.integration.conftest import real_services, start_worker  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for_refresh(line, timeout: float = 120) -> QueueRefresh:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        refresh = QueueRefresh.objects.filter(line=line).first()
        if refresh is not None:
            return refresh
        time.sleep(0.2)
    raise TimeoutError(f"no refresh of {line.name} after {timeout}s")


def test_a_refresh_runs_on_the_datasets_worker_not_the_inference_one(
    start_worker,  # noqa: F811
    model_version,
):
    from ml.services import set_active_version

    line = services.create_line(name="press-9", level="full", audit_fraction=0.0)
    set_active_version(line=line, model_version=model_version, changed_by="test")
    station, _ = services.create_station(line=line, name="cam-1")
    for number in range(6):
        seed_inspection(station, f"SN-{number}", probability=0.1, model_version=model_version)
    # stopped here, not at the session's end: a worker left consuming the inference queue
    # would take later tests' station items
    inference = start_worker("inference-only", queues="inference")
    datasets = None
    try:
        tasks.send_refresh(line.pk)
        time.sleep(3)
        assert not QueueRefresh.objects.filter(line=line).exists()  # the station's worker left it

        datasets = start_worker("datasets-queue", queues="datasets")
        refresh = wait_for_refresh(line)
        assert refresh.result["active_learning"]["status"] == "picked"
        assert refresh.result["active_learning"]["pool_size"] == 6
        assert QueueEntry.objects.filter(line=line, state="open").count() == 6
        assert "labeling.refresh_line_queue[" not in inference.text()  # never received there
    finally:
        inference.stop()
        if datasets is not None:
            datasets.stop()
