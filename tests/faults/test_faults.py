"""Faults while stations post: nothing acknowledged is lost or decided twice, every request
gets an answer or a JSON 503 in time, and Loupe recovers by itself.

Each test runs its own PostgreSQL, Redis, gunicorn (2 gthread workers) and Celery worker
(prefork, 2 processes) for the inference queue. Stations post for a few seconds, the fault
happens, they post on; the test never restarts a Loupe process: gunicorn's master replaces a
killed web worker, Celery's a killed pool process, and the rest must reconnect by itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import requests

from tests.faults import ledger
from tests.faults.processes import WARMED_UP, wait_for
from tests.faults.stations import BUDGET_MS, STATIONS, Fleet, big_png, png_bytes

# Answers may take the budget plus the fail-safe's own queries and the answer: never more.
ANSWER_SLACK_S = 3.0
POST_BEFORE_S = 2.0
POST_AFTER_S = 7.0


def run_with_fault(name, stack, fault, fault_table, tmp_path) -> tuple[ledger.Tally, Fleet]:
    """Post, cause the fault (fault(fleet) returns the wall time the dependency was back),
    post on, and hold the run to every promise. Returns the counts and the fleet."""
    fleet = Fleet(stack.url, stack.tokens, timeout_s=BUDGET_MS / 1000 + 10)
    fleet.start()
    fleet.wait_for_model(STATIONS, timeout=90)
    time.sleep(POST_BEFORE_S)
    back_at = fault(fleet)
    time.sleep(POST_AFTER_S)
    fleet.stop(drain_s=15)
    stack.check_alive()  # nothing was restarted by the test, and nothing died for good
    tally = ledger.tally(name, fleet, stack.db_url, back_at_wall=back_at)
    fault_table.append(tally)
    (tmp_path / "counts.json").write_text(json.dumps(dataclasses.asdict(tally), indent=2))
    print(f"\n{ledger.table([tally])}")

    problems = "\n".join(tally.problems[:20])
    assert tally.sent > STATIONS, "the stations posted almost nothing"
    assert tally.acknowledged == tally.sent, problems
    assert (tally.lost, tally.duplicated) == (0, 0), problems
    assert (tally.bad_answers, tally.hangs) == (0, 0), problems
    assert tally.slowest_s <= BUDGET_MS / 1000 + ANSWER_SLACK_S, problems
    assert tally.fail_safe_accepts == 0, problems
    assert tally.late_fail_safe == 0, problems
    assert tally.model_after_recovery >= STATIONS, "the model decided nothing after recovery"
    return tally, fleet


def while_predicting_a_big_item(stack, fleet: Fleet) -> tuple[int, threading.Thread]:
    """Post an image slow to decode; once a pool process has it open (it is predicting on
    it), return that process's pid and the station's thread posting it."""
    png = big_png(4000)
    stored = stack.media / "images" / hashlib.sha256(png).hexdigest()[:2]
    stored = stored / f"{hashlib.sha256(png).hexdigest()}.png"
    big = threading.Thread(
        target=fleet.post_until_answered, args=(requests.Session(), 0, "big-1", png), daemon=True
    )
    fleet.sent.append("big-1")
    big.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = stack.worker.child_reading(stored)
        if pid is not None:
            return pid, big
        time.sleep(0.005)
    raise AssertionError("no worker process predicted on the big item")


def test_worker_killed_mid_inference(stack, fault_table, tmp_path):
    """A pool process SIGKILLed while it predicts: its task goes back to the queue, Celery's
    master starts another process, the item is decided once."""

    def kill_a_predicting_process(fleet: Fleet) -> float:
        warm = stack.worker.text().count(WARMED_UP)
        pid, big = while_predicting_a_big_item(stack, fleet)
        os.kill(pid, signal.SIGKILL)
        # the other pool process goes on; the master forks a new one, which is back once it
        # has loaded the model (the pool sends it no item before)
        back_at = wait_for(
            "a new pool process", lambda: stack.worker.text().count(WARMED_UP) > warm, timeout=60
        )
        big.join(timeout=30)
        return time.time() - (time.monotonic() - back_at)

    run_with_fault("worker killed", stack, kill_a_predicting_process, fault_table, tmp_path)
    assert "WorkerLostError" in stack.worker.text()


def test_web_killed_mid_upload(stack, fault_table, tmp_path):
    """The gunicorn worker receiving an upload is SIGKILLed halfway through it: that request
    and the others in flight there get a connection error, and each station's retry with the
    same external_id gets the one answer. gunicorn's master starts a new worker."""

    def kill_the_web_worker_receiving_an_upload(fleet: Fleet) -> float:
        uploading = threading.Event()
        png = png_bytes(fleet.images[0], "slow-1")
        slow = threading.Thread(
            target=fleet.post_slowly, args=(0, "slow-1", png, uploading), daemon=True
        )
        slow.start()
        assert uploading.wait(timeout=10)
        wait_for(
            "the web worker receiving the upload",
            lambda: stack.web.child_serving(stack.port, fleet.slow_client_port),
            timeout=5,
            poll=0.01,
        )
        victim = stack.web.child_serving(stack.port, fleet.slow_client_port)
        os.kill(victim, signal.SIGKILL)
        back_at = wait_for(
            "gunicorn's new worker",
            lambda: len(stack.web.children()) == 2 and victim not in stack.web.children(),
            timeout=30,
        )
        slow.join(timeout=30)
        return time.time() - (time.monotonic() - back_at)

    tally, fleet = run_with_fault(
        "web killed", stack, kill_the_web_worker_receiving_an_upload, fault_table, tmp_path
    )
    slow = [a.kind for a in fleet.attempts if a.external_id == "slow-1"]
    assert slow[0] == "connection_error" and slow[-1] == "answer", slow
    retried = {a.external_id for a in fleet.attempts if a.kind == "connection_error"}
    assert retried <= set(fleet.answers()), "a station's retry got no answer"


def test_redis_restarted(stack, fault_table, tmp_path):
    """Redis (broker and results, no persistence) stops for two seconds and comes back:
    the worker resumes consuming by itself, and the web sends and waits again."""

    def restart_redis(fleet: Fleet) -> float:
        _, big = while_predicting_a_big_item(stack, fleet)  # a task unacknowledged meanwhile
        stack.redis.stop(keep_data=True)
        time.sleep(2)
        stack.redis.start()
        back_at = time.time()
        big.join(timeout=30)
        return back_at

    tally, _ = run_with_fault("redis restarted", stack, restart_redis, fault_table, tmp_path)
    assert "Connection to broker lost" in stack.worker.text()


def test_postgres_restarted(stack, fault_table, tmp_path):
    """PostgreSQL restarts (fast shutdown, down two seconds): requests meanwhile get a JSON
    503, and web and worker drop their dead connections at once."""

    def restart_postgres(fleet: Fleet) -> float:
        stack.pg.stop()
        started = time.monotonic()
        # a browser with a session, and a station asking for an answer, while it is down
        page = f"{stack.url}/review/"
        probes.append(requests.get(page, cookies={"sessionid": "x" * 32}, timeout=10))
        station = {"Authorization": f"Bearer {stack.tokens[0]}"}
        answer = f"{stack.url}/api/v1/inspections/1/"
        probes.append(requests.get(answer, headers=station, timeout=10))
        time.sleep(max(0.0, 2 - (time.monotonic() - started)))
        stack.pg.start()
        return time.time()

    probes: list[requests.Response] = []
    run_with_fault("postgres restarted", stack, restart_postgres, fault_table, tmp_path)
    page, api = probes
    assert (page.status_code, page.headers["Retry-After"]) == (503, "2")
    assert page.headers["Content-Type"].startswith("text/html")
    assert "briefly unavailable" in page.text
    assert (api.status_code, api.headers["Retry-After"]) == (503, "2")
    assert api.json()["error"] == "unavailable"


@pytest.fixture
def small_media(media_dir):
    """MEDIA_ROOT on a 16 MB tmpfs of its own, so it can fill up for real."""
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(media_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mount.stderr.strip()}")
    yield media_dir
    subprocess.run(["umount", "-l", str(media_dir)], check=False)


def test_media_disk_full(small_media, stack, fault_table, tmp_path):
    """The media filesystem fills up for three seconds: uploads get a JSON 503 and nothing
    is stored half; once space is freed, stations are answered again."""
    filler = small_media / "filler"

    def fill_the_disk(fleet: Fleet) -> float:
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 1024 * 1024)
        except OSError:
            pass
        finally:
            os.close(fd)
        time.sleep(3)
        filler.unlink()
        return time.time()

    tally, _ = run_with_fault("media disk full", stack, fill_the_disk, fault_table, tmp_path)
    assert tally.unavailable_503 >= 1
    assert not list(small_media.rglob(".upload-*")), "a half-written upload was left"
