"""The fault suite's services: per test its own PostgreSQL and Redis, gunicorn and a worker.

A template cluster is migrated and given its line, model and stations once per session;
each test runs on a copy of it (cp of the data folder, its own port), so a restart in one
test never touches another test, the shared services, or other people's databases.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults import ledger
from tests.faults.processes import (
    ROOT,
    WARMED_UP,
    LoupeProcess,
    Postgres,
    RedisServer,
    port_open,
    postgres_folder,
    start_gunicorn,
    start_worker,
    wait_for,
)
from tests.faults.stations import BUDGET_MS, STATIONS

DB_NAME = "loupe"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def loupe_env(*, database_url: str, redis_url: str, media: Path, models: Path) -> dict:
    """A production-like environment (DEBUG off, a real broker), on plain http."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "LOUPE_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="loupe.settings",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url,
        MEDIA_ROOT=str(media),
        LOUPE_MODEL_DIR=str(models),
        LOUPE_TORCH_THREADS="1",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def fault_template(trained_artifact, tmp_path_factory):
    """A migrated cluster with a fully automated line, its model and stations; stopped."""
    root = tmp_path_factory.mktemp("faults-template")
    models = root / "models"
    models.mkdir()
    pg = Postgres.init(postgres_folder("loupe-faults-template-"), root / "postgres.log")
    pg.start()
    try:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", "createdb", "-h", "127.0.0.1", "-p",
             str(pg.port), DB_NAME] if os.geteuid() == 0 else
            ["createdb", "-h", "127.0.0.1", "-p", str(pg.port), DB_NAME],
            check=True,
        )  # fmt: skip
        env = loupe_env(
            database_url=f"{pg.url}/{DB_NAME}",
            redis_url="redis://127.0.0.1:1/0",  # nothing is sent while setting up
            media=root / "media",
            models=models,
        )
        env["CELERY_TASK_ALWAYS_EAGER"] = "1"
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        world = subprocess.run(
            [sys.executable, "-m", "tests.faults.world", str(trained_artifact), str(STATIONS),
             str(BUDGET_MS)],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        pg.stop()
    tokens = json.loads(world.stdout.strip().splitlines()[-1])["tokens"]
    yield {"postgres": pg, "tokens": tokens, "models": models}
    shutil.rmtree(pg.data.parent, ignore_errors=True)


class Stack:
    """One fault test's PostgreSQL, Redis, gunicorn and worker, and how to reach them."""

    def __init__(self, template: dict, folder: Path, media: Path) -> None:
        self.folder, self.media = folder, media
        self.tokens = template["tokens"]
        self.pg = Postgres.copy_of(
            template["postgres"], postgres_folder("loupe-faults-"), folder / "postgres.log"
        )
        self.redis = RedisServer(folder)
        self.env = loupe_env(
            database_url=f"{self.pg.url}/{DB_NAME}",
            redis_url=self.redis.url,
            media=media,
            models=template["models"],
        )
        self.web: LoupeProcess | None = None
        self.worker: LoupeProcess | None = None
        self.port = 0

    @property
    def db_url(self) -> str:
        return f"{self.pg.url}/{DB_NAME}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.pg.start()
        self.redis.start()
        self.worker = start_worker(self.env, self.folder / "worker.log")
        self.web, self.port = start_gunicorn(self.env, self.folder / "gunicorn.log")
        wait_for("gunicorn", lambda: port_open(self.port), timeout=60, alive=self.check_alive)
        # both pool processes have loaded the model: items posted from now on meet their
        # budget, so what the counts show is the fault's doing
        warm = lambda: self.worker.text().count(WARMED_UP) >= 2  # noqa: E731
        wait_for("worker", warm, timeout=90, alive=self.check_alive)

    def check_alive(self) -> None:
        for process in (self.web, self.worker):
            if process is not None:
                process.check_alive()

    def stop(self) -> None:
        for process in (self.web, self.worker):
            if process is not None:
                process.stop()
        self.redis.stop()
        self.pg.stop()
        shutil.rmtree(self.pg.data.parent, ignore_errors=True)


@pytest.fixture
def media_dir(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    return media


@pytest.fixture
def stack(fault_template, tmp_path, media_dir):
    started = Stack(fault_template, tmp_path, media_dir)
    try:
        started.start()
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def fault_table(tmp_path_factory):
    """Every fault's counts, printed as one table (pytest -s) and written as JSON."""
    tallies: list[ledger.Tally] = []
    yield tallies
    if tallies:
        path = tmp_path_factory.mktemp("faults-report") / "faults.json"
        ledger.write(tallies, path)
        print(f"\n\nFault suite ({BUDGET_MS} ms budget, {STATIONS} stations)\n")
        print(ledger.table(tallies))
        print(f"\n(written to {path})")
