"""A batch prediction run by a real Celery worker on the batch queue, PostgreSQL and Redis: the
worker yields the CPU to station work, every image is predicted, and the images sent to the
labeling queue stay out of the line's figures and evidence."""

import io
import os
import re
import time
import zipfile

import pytest

from datasets import batch, batch_results, dispatch
from datasets.models import BatchPrediction
from inspection import console, services
from labeling.models import QueueEntry
from tests.helpers import image_bytes, seed_inspection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("batch", queues="batch")
    yield worker
    worker.stop()


def wait_until_finished(record: BatchPrediction, timeout: float = 120) -> BatchPrediction:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record.refresh_from_db()
        if record.state in ("done", "failed"):
            return record
        time.sleep(0.2)
    raise TimeoutError(f"batch not finished after {timeout}s: {record.state} {record.done}")


def test_a_batch_runs_on_its_own_worker_and_its_items_stay_out_of_the_lines_figures(
    worker, model_version, tmp_path
):
    from ml.services import set_active_version

    line = services.create_line(name="press-7", level="full", audit_fraction=0.0)
    set_active_version(line=line, model_version=model_version, changed_by="test")
    line.refresh_from_db()
    station, _ = services.create_station(line=line, name="cam-1")
    for number in range(2):  # live work the model decided
        seed_inspection(station, f"SN-{number}", probability=0.1, model_version=model_version)
    figures = console.day_counts(line)
    hourly = console.hourly_inspected(line)
    evidence = console.count_agreement_items(line)

    content = io.BytesIO()
    with zipfile.ZipFile(content, "w") as zf:
        for number in range(20):
            zf.writestr(f"shots/{number:03d}.png", image_bytes(seed=number))
        zf.writestr("shots/readme.txt", "not an image")
    source = tmp_path / "shots.zip"
    source.write_bytes(content.getvalue())
    record = dispatch.start_batch(
        line=line, archive=batch.keep_file(source), source_name="shots.zip"
    )
    record = wait_until_finished(record)
    assert (record.state, record.total, record.done, record.failed_count) == ("done", 21, 21, 1)
    assert record.images.filter(defect_probability__isnull=False).count() == 20
    assert "Task datasets.predict_batch[" in worker.text()
    # the worker serves the batch queue alone: it lowered its priority before predicting
    niced = re.search(r"batch worker process (\d+) runs at nice (\d+)", worker.text())
    assert niced and int(niced.group(2)) == 19
    pid = int(niced.group(1))
    assert os.getpriority(os.PRIO_PROCESS, pid) == 19
    assert os.sched_getscheduler(pid) == os.SCHED_IDLE

    outcome = batch_results.send_to_labeling(batch=record, selection=batch_results.Selection())
    assert outcome == {"selected": 20, "queued": 20}
    assert QueueEntry.objects.filter(line=line, kind="batch").count() == 20
    assert console.day_counts(line) == figures
    assert figures.inspected == 2
    assert console.hourly_inspected(line) == hourly
    assert console.count_agreement_items(line) == evidence
