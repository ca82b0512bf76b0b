"""Blue-green over real HTTP, a real two-process worker, PostgreSQL and Redis: both worker
processes load the challenger when the rollout starts (told through Redis, not on their first
item), and switches both ways under continuous station traffic fail no request."""

import threading
import time
from pathlib import Path

import pytest
import requests

from inspection import rollouts, services
from ml import challengers
from ml import services as ml_services
from tests.helpers import artifact_copies, image_bytes

pytestmark = pytest.mark.django_db(transaction=True)
BUDGET_MS = 3000
POOL = 2


def pool_memory_mb(worker) -> list[float]:
    """Resident memory of each pool process of the worker, from /proc."""
    from loupe.common.metrics import process_memory_bytes

    main = worker.process.pid  # `python -m celery` is the worker's main process
    pool = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    return sorted(round(process_memory_bytes(pid) / 2**20, 1) for pid in pool)


@pytest.fixture(scope="module")
def worker(start_worker):
    worker = start_worker("blue-green", concurrency=POOL)
    yield worker
    worker.stop()


@pytest.fixture
def line_with_green(live_server, trained_artifact, settings, worker):
    paths = artifact_copies(
        trained_artifact, settings.LOUPE_MODEL_DIR, ("bg-blue.pt", "bg-green.pt")
    )
    line = services.create_line(name="bg-line", level="full", latency_budget_ms=BUDGET_MS)
    blue = ml_services.register_model_version(artifact=paths[0], name="blue", line=line)
    ml_services.set_active_version(line=line, model_version=blue, changed_by="test")
    green = ml_services.register_model_version(artifact=paths[1], name="green", line=line)
    _, token = services.create_station(line=line, name="cam-1")
    return line, green, token, f"{live_server.url}/api/v1/inspections/"


def test_both_processes_load_green_at_start_and_switches_fail_no_request(line_with_green, worker):
    line, green, token, url = line_with_green
    worker.wait_for_log("warmed up model blue", timeout=30)  # the news of its activation
    before = pool_memory_mb(worker)
    rollout = challengers.start_challenger(
        model_version=green, mode="blue_green", changed_by="test"
    )
    # each pool process says it warmed green up, before any item asked for it, and sooner
    # than its own look every 30 s would have
    deadline = time.monotonic() + 15
    while worker.text().count("warmed up model green") < POOL and time.monotonic() < deadline:
        time.sleep(0.1)
    assert worker.text().count("warmed up model green") == POOL, worker.text()[-3000:]
    after = pool_memory_mb(worker)
    print(f"\npool processes' memory (MB) with blue: {before}, with blue and green: {after}")

    answers, stop = [], threading.Event()

    def station() -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        number = 0
        while not stop.is_set():
            started = time.perf_counter()
            response = session.post(
                url,
                files={"image": ("part.png", image_bytes(seed=number % 50), "image/png")},
                data={"external_id": f"BG-{number}"},
                timeout=30,
            )
            answers.append((response.status_code, response.json(), time.perf_counter() - started))
            number += 1

    posting = threading.Thread(target=station)
    posting.start()
    try:
        for _ in range(4):  # green, blue, green, blue: each for the next item
            time.sleep(1.5)
            rollout = rollouts.set_rollout_share(
                rollout=rollout, share=1.0 - rollout.share, changed_by="test"
            )
        time.sleep(1.5)
    finally:
        stop.set()
        posting.join(timeout=60)
    failed = [
        (status, body, seconds)
        for status, body, seconds in answers
        if status not in (200, 201) or body.get("fail_safe_reason") or seconds * 1000 > BUDGET_MS
    ]
    served = {body.get("model_version") for _, body, _ in answers}
    print(f"\n{len(answers)} requests over 4 switches, {len(failed)} failed, served by {served}")
    assert failed == []
    assert served == {"blue", "green"}
    assert len(answers) >= 20
