"""Real services for integration tests: PostgreSQL, Redis, Celery worker processes, HTTP.

The test command (make test) sets DATABASE_URL and CELERY_BROKER_URL; these tests refuse to
run against the embedded defaults, since that would not test what they claim to.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def real_services():
    engine = django_settings.DATABASES["default"]["ENGINE"]
    broker = django_settings.CELERY_BROKER_URL
    if "postgresql" not in engine or not broker.startswith("redis://"):
        pytest.fail(
            "integration tests need PostgreSQL and Redis: run them with `make test`, which sets "
            f"DATABASE_URL and CELERY_BROKER_URL (now: {engine}, {broker})"
        )
    redis.Redis.from_url(broker).flushdb()
    return broker


class Worker:
    """A Celery worker in its own process group, so SIGKILL takes its children too."""

    def __init__(
        self,
        name: str,
        db_name: str,
        loupe_dirs: Path,
        log_dir: Path,
        queues: str = "inference",
        concurrency: int = 1,
        **env,
    ):
        self.log_path = log_dir / f"worker-{name}.log"
        database = django_settings.DATABASES["default"]
        url = (
            f"postgresql://{database['USER'] or 'postgres'}@{database['HOST'] or '127.0.0.1'}:"
            f"{database['PORT'] or 5432}/{db_name}"
        )
        environment = {
            **os.environ,
            "DATABASE_URL": url,
            "MEDIA_ROOT": str(loupe_dirs / "media"),
            "LOUPE_MODEL_DIR": str(loupe_dirs / "models"),
            "LOUPE_TORCH_THREADS": "1",
            **env,
        }
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "loupe",
                "worker",
                "-Q",
                queues,
                "--pool=prefork",
                f"--concurrency={concurrency}",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "info",
                "-n",
                f"{name}@%h",
            ],
            cwd=ROOT,
            env=environment,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.wait_for_log("ready.", timeout=60)

    def text(self) -> str:
        return self.log_path.read_text()

    def wait_for_log(self, needle: str, *, timeout: float, poll: float = 0.05) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited:\n{self.text()[-3000:]}")
            time.sleep(poll)
        raise TimeoutError(f"{needle!r} not in worker log after {timeout}s:\n{self.text()[-3000:]}")

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="session")
def start_worker(real_services, django_db_setup, django_db_blocker, loupe_dirs, tmp_path_factory):
    from django.db import connection

    db_name = connection.settings_dict["NAME"]
    log_dir = tmp_path_factory.mktemp("worker-logs")
    started: list[Worker] = []

    def start(name: str, queues: str = "inference", concurrency: int = 1, **env) -> Worker:
        worker = Worker(name, db_name, loupe_dirs, log_dir, queues, concurrency, **env)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
