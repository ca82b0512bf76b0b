"""/metrics served by real gunicorn (2 processes) merges what the web processes and every
prefork pool process of a real Celery worker counted, with the right labels; the dashboard
and the alert rules name only figures such a scrape has."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests
import yaml
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from tests.helpers import image_bytes
from tests.metrics.conftest import Scrape

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "metrics-test-token"
POOL = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stale_counter(folder: Path, line: str) -> None:
    """A counter file as a previous run of the service would have left it."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key

    folder.mkdir(parents=True, exist_ok=True)
    labels = ["line", "station"]
    stale = MmapedDict(str(folder / "counter_999999.db"))
    name = "loupe_station_retries"
    stale.write_value(mmap_key(name, f"{name}_total", labels, [line, "cam"], "doc"), 5.0, 0.0)
    stale.close()


class Service:
    def __init__(self, name: str, argv: list[str], env: dict, log: Path):
        self.name, self.log_path = name, log
        self.log = open(log, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def wait_until(what: str, ready, services, timeout: float = 90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = ready()
        if result:
            return result
        for service in services:
            service.check()
        time.sleep(0.2)
    raise TimeoutError(what)


def build_world(trained_artifact, models: Path) -> dict:
    """full: decides every item (rejects: thresholds at 0); tight: a 1 ms budget, so every
    item gets the fail-safe and its prediction comes late."""
    from inspection import services
    from ml.services import register_model_version, set_active_version

    target = models / "metrics-tiny.pt"
    shutil.copy(trained_artifact, target)
    with override_settings(LOUPE_MODEL_DIR=models):
        model = register_model_version(artifact=target, name="tiny")
    tokens = {}
    for name, budget in (("m-full", 10_000), ("m-tight", 1)):
        line = services.create_line(
            name=name, level="full", accept_threshold=0.0, reject_threshold=0.0001,
            latency_budget_ms=budget, audit_fraction=0.0,
        )  # fmt: skip
        set_active_version(line=line, model_version=model, changed_by="metrics test")
        for station in ("cam-a", "cam-b") if name == "m-full" else ("cam-t",):
            tokens[station] = services.create_station(line=line, name=station)[1]
    return tokens


@pytest.fixture(scope="module")
def traffic(django_db_setup, django_db_blocker, trained_artifact, loupe_dirs, tmp_path_factory):
    """Start gunicorn and a worker, post items, scrape; what the tests read."""
    folder = tmp_path_factory.mktemp("metrics-processes")
    metrics_dir = folder / "metrics"
    node = "metrics@localhost"
    stale_counter(metrics_dir / "web", "stale-web")
    stale_counter(metrics_dir / f"worker-{node}", "stale-worker")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "MEDIA_ROOT": str(loupe_dirs / "media"),
        "LOUPE_MODEL_DIR": str(loupe_dirs / "models"),
        "LOUPE_METRICS_DIR": str(metrics_dir),
        "LOUPE_METRICS_TOKEN": TOKEN,
        "LOUPE_TORCH_THREADS": "1",
    }
    # nothing a previous run left on the broker may reach this worker
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    with django_db_blocker.unblock():
        tokens = build_world(trained_artifact, loupe_dirs / "models")
    port = free_port()
    web = Service(
        "gunicorn",
        [sys.executable, "-m", "gunicorn", "loupe.wsgi", "-k", "gthread", "--threads", "4",
         "-w", "2", "-b", f"127.0.0.1:{port}"],
        env, folder / "gunicorn.log",
    )  # fmt: skip
    worker = Service(
        "worker",
        [sys.executable, "-m", "celery", "-A", "loupe", "worker", "-Q", "inference",
         "--pool=prefork", f"--concurrency={POOL}", "--without-gossip", "--without-mingle",
         "--without-heartbeat", "-l", "info", "-n", node],
        env, folder / "worker.log",
    )  # fmt: skip
    services = [web, worker]
    base = f"http://127.0.0.1:{port}"

    def scrape(**headers) -> requests.Response:
        headers.setdefault("Authorization", f"Bearer {TOKEN}")
        return requests.get(f"{base}/metrics", headers=headers, timeout=30)

    def figures() -> Scrape:
        return Scrape(scrape().text)

    def figures_once_answering() -> Scrape | None:
        # a web process's first answer imports the app; beside a training test on two
        # cores that took over 10 s in CI, which is a slow start, not a wrong figure
        try:
            return figures()
        except requests.Timeout:
            return None

    def post(station: str, external_id: str, data: bytes | None = None, token=None):
        image = image_bytes(seed=len(external_id)) if data is None else data
        return requests.post(
            f"{base}/api/v1/inspections/",
            headers={"Authorization": f"Bearer {token or tokens[station]}", "Connection": "close"},
            files={"image": ("part.png", image, "image/png")},
            data={"external_id": external_id},
            timeout=30,
        )

    try:
        wait_until("gunicorn", lambda: _listens(port), services)
        # both pool processes loaded the model and said they are alive
        wait_until(
            "the pool",
            lambda: (
                (now := figures_once_answering())
                and now.value("loupe_worker_processes", queue="inference") == POOL
            ),
            services,
            timeout=120,
        )
        answers = [post("cam-a", f"A-{i}") for i in range(3)]
        answers += [post("cam-b", f"B-{i}") for i in range(2)]
        answers += [post("cam-t", f"T-{i}") for i in range(2)]
        answers.append(post("cam-a", "A-0"))  # a retry
        answers.append(post("cam-a", "A-bad", data=b""))
        answers.append(post("cam-a", "A-who", token="not-a-station-token"))
        # the late predictions of the tight line finish in the worker after their answers
        wait_until(
            "the late predictions",
            lambda: (
                (now := figures_once_answering())
                and now.value("loupe_model_inference_seconds_count", line="m-tight") == 2
            ),
            services,
        )
        yield {
            "answers": answers,
            "scrape": figures(),
            "refused": {
                "no token, from this machine": scrape(Authorization="").status_code,
                "no token, through a proxy": scrape(
                    Authorization="", **{"X-Forwarded-For": "203.0.113.9"}
                ).status_code,
                "wrong token": scrape(Authorization="Bearer nope").status_code,
            },
            "metrics_dir": metrics_dir,
        }
    finally:
        for service in services:
            service.stop()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_the_station_answers_are_what_the_figures_count(traffic):
    codes = [answer.status_code for answer in traffic["answers"]]
    assert codes == [201] * 7 + [200, 400, 401]
    assert [answer.json()["error"] for answer in traffic["answers"][8:]] == [
        "image_empty",
        "authentication_failed",
    ]
    bodies = [answer.json() for answer in traffic["answers"][:7]]
    assert [(b["decision"], b["decided_by"]) for b in bodies[:5]] == [("reject", "model")] * 5
    assert [(b["decision"], b["fail_safe_reason"]) for b in bodies[5:]] == [
        ("review", "budget_missed")
    ] * 2


def test_the_web_processes_count_requests_outcomes_refusals_and_latency(traffic):
    figures = traffic["scrape"]
    decided = dict(line="m-full", model_version="tiny", outcome="reject", decided_by="model")
    assert figures.value("loupe_station_requests_total", station="cam-a", **decided) == 3
    assert figures.value("loupe_station_requests_total", station="cam-b", **decided) == 2
    tight = dict(line="m-tight", station="cam-t")
    assert figures.value("loupe_station_requests_total", outcome="review", decided_by="none",
                         **tight) == 2  # fmt: skip
    assert (
        figures.value(
            "loupe_fail_safe_decisions_total", reason="budget_missed", model_version="", **tight
        )
        == 2
    )
    assert figures.value("loupe_fail_safe_decisions_total", line="m-full") == 0
    assert figures.value("loupe_station_retries_total", line="m-full", station="cam-a") == 1
    assert (
        figures.value(
            "loupe_station_invalid_inputs_total",
            line="m-full",
            station="cam-a",
            code="image_empty",
        )
        == 1
    )
    assert (
        figures.value(
            "loupe_station_invalid_inputs_total", line="", station="", code="authentication_failed"
        )
        == 1
    )
    for histogram in ("loupe_station_receive_seconds", "loupe_station_request_seconds"):
        assert figures.value(f"{histogram}_count", line="m-full", station="cam-a") == 3
        assert figures.value(f"{histogram}_count", **tight) == 2
        assert figures.value(f"{histogram}_bucket", le="+Inf", line="m-full") == 5
    assert figures.value("loupe_station_request_seconds_count", model_version="tiny") == 5
    # what a previous run left in the web's folder was emptied when gunicorn started
    assert not figures.samples("loupe_station_retries_total", line="stale-web")


def test_every_pool_process_counts_queue_model_and_busy_time(traffic):
    figures = traffic["scrape"]
    for line, station, items in (("m-full", "cam-a", 3), ("m-full", "cam-b", 2),
                                 ("m-tight", "cam-t", 2)):  # fmt: skip
        labels = dict(line=line, station=station)
        assert figures.value("loupe_station_queue_seconds_count", **labels) == items
        assert (
            figures.value("loupe_model_inference_seconds_count", model_version="tiny", **labels)
            == items
        )
    predict = dict(queue="inference", task="inspection.predict")
    assert figures.value("loupe_worker_tasks_total", state="success", **predict) == 7
    model_s = figures.value("loupe_model_inference_seconds_sum")
    assert figures.value("loupe_worker_busy_seconds_total", **predict) >= model_s > 0
    assert figures.value("loupe_worker_processes", queue="inference") == POOL
    memory = figures.value("loupe_worker_memory_bytes", queue="inference")
    largest = figures.value("loupe_worker_process_memory_max_bytes", queue="inference")
    assert memory >= POOL * 50e6 and memory > largest > 50e6  # torch and a model, each
    heartbeat = figures.value("loupe_worker_heartbeat_timestamp_seconds", queue="inference")
    assert time.time() - 30 < heartbeat <= time.time()
    assert not figures.samples("loupe_station_retries_total", line="stale-worker")
    # the pool's processes each wrote their own files, in the worker's folder
    worker_folder = traffic["metrics_dir"] / "worker-metrics@localhost"
    pids = {path.stem.rsplit("_", 1)[1] for path in worker_folder.glob("gauge_livesum_*.db")}
    assert len(pids) == POOL


def test_a_scrape_needs_the_token_or_a_direct_allowed_address(traffic):
    assert traffic["refused"] == {
        "no token, from this machine": 200,
        "no token, through a proxy": 403,
        "wrong token": 401,
    }


def referenced_names(text: str) -> set[str]:
    """Metric names in PromQL expressions: loupe_... not followed by a ( (no function is)."""
    return set(re.findall(r"\b(loupe_[a-z0-9_]+)\b", text))


def test_the_dashboard_and_alert_rules_read_names_the_scrape_has(traffic):
    dashboard = json.loads((ROOT / "deploy/grafana/loupe-dashboard.json").read_text())
    exprs = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ] + [variable["definition"] for variable in dashboard["templating"]["list"]]
    rules = yaml.safe_load((ROOT / "deploy/prometheus/alerts.yml").read_text())
    alerts = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 15
    scraped = traffic["scrape"].names
    for source, expressions in (("dashboard", exprs), ("alerts", alerts)):
        names = set().union(*map(referenced_names, expressions))
        assert names - scraped == set(), f"{source} names what no scrape has"
    # each figure the issue asks for has a panel and is read by at least one rule or panel
    every = set().union(*map(referenced_names, exprs + alerts))
    families = {family.name for family in traffic["scrape"].families}
    unread = {
        name for name in families
        if not any(name == n or n.startswith(f"{name}_") for n in every)
    }  # fmt: skip
    assert unread == set()
