"""Can this install do its work: the checks behind /health/, which a load balancer probes.

    database   SELECT 1 through Django's connection
    broker     a connection to the Celery broker (and a PING where the broker is Redis)
    workers    per queue, how many workers consume it: one `inspect active_queues` broadcast
               over the broker's control channel, answered by live workers within
               WORKER_REPLY_S (1 s); a queue nobody consumes fails
    disk       free space on MEDIA_ROOT (images, exports) and LOUPE_MODEL_DIR (artifacts)
               against LOUPE_HEALTH_MIN_FREE_MB, and that each can be written to

Every check runs in its own daemon thread and is reported as timed out if it has not answered
by DEADLINE_S, so the probe never hangs on a dead dependency; each also has its own socket
timeouts, so a stuck thread ends by itself. The embedded mode (memory broker, tasks run in the
web process) has no broker or worker to reach: both report "in process".

The endpoint is open without a login: results name no host, URL, path or error message, only
the kind of error (the log has the rest).
"""

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)

DEADLINE_S = 3.0
BROKER_TIMEOUT_S = 1.0
DATABASE_TIMEOUT_S = 2
WORKER_REPLY_S = 1.0
IN_PROCESS = {"ok": True, "mode": "in process"}


@dataclass
class HealthReport:
    checks: dict[str, dict] = field(default_factory=dict)

    @property
    def failing(self) -> list[str]:
        return [name for name, result in self.checks.items() if not result["ok"]]

    @property
    def ok(self) -> bool:
        return not self.failing

    def as_dict(self) -> dict:
        return {
            "status": "ok" if self.ok else "failing",
            "failing": self.failing,
            "checks": self.checks,
        }


def _runs_in_process() -> bool:
    from loupe.celery import app

    return bool(app.conf.task_always_eager) or app.conf.broker_url.startswith("memory://")


def _broker_connection():
    from loupe.celery import app

    return app.connection_for_write(
        connect_timeout=BROKER_TIMEOUT_S,
        transport_options={
            **(app.conf.broker_transport_options or {}),
            "socket_timeout": BROKER_TIMEOUT_S,
            "socket_connect_timeout": BROKER_TIMEOUT_S,
            "max_retries": 0,
        },
    )


def _connect(conn) -> None:
    conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=1)
    client = getattr(conn.default_channel, "client", None)
    if client is not None and hasattr(client, "ping"):
        client.ping()  # Redis connects lazily: make it answer


def check_database() -> dict:
    from django.db import connection

    if connection.vendor == "postgresql":
        # a connection of its own with a connect timeout: a server that accepts and never
        # answers would otherwise hold this thread for as long as TCP allows
        import psycopg

        params = {
            key: value
            for key, value in connection.get_connection_params().items()
            if key not in ("cursor_factory", "context", "prepare_threshold", "pool")
        }
        params["connect_timeout"] = DATABASE_TIMEOUT_S
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute("SELECT 1").fetchone()
        return {"ok": True}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        connection.close()  # this thread's own connection
    return {"ok": True}


def check_broker() -> dict:
    if _runs_in_process():
        return dict(IN_PROCESS)
    with _broker_connection() as conn:
        _connect(conn)
    return {"ok": True}


def expected_queues() -> list[str]:
    """The queues that must have a worker: LOUPE_HEALTH_QUEUES, or every queue Loupe sends to."""
    from datasets.batch import batch_queue
    from datasets.limits import datasets_queue
    from ml.tasks import TRAINING_QUEUE

    configured = list(getattr(settings, "LOUPE_HEALTH_QUEUES", []) or [])
    every = [settings.CELERY_TASK_DEFAULT_QUEUE, datasets_queue(), batch_queue(), TRAINING_QUEUE]
    return configured or every


def check_workers() -> dict:
    if _runs_in_process():
        return dict(IN_PROCESS)
    from loupe.celery import app

    with _broker_connection() as conn:
        _connect(conn)
        replies = app.control.inspect(timeout=WORKER_REPLY_S, connection=conn).active_queues()
    workers = {name: 0 for name in expected_queues()}
    for queues in (replies or {}).values():
        for queue in {q.get("name") for q in queues or []}:
            if queue in workers:
                workers[queue] += 1
    missing = [name for name, count in workers.items() if count == 0]
    result = {"ok": not missing, "queues": workers}
    if missing:
        result["error"] = f"no worker for {', '.join(missing)}"
    return result


def _existing(path: Path) -> Path:
    """The folder itself, or the nearest parent it will be created in on the first write."""
    while not path.is_dir() and path != path.parent:
        path = path.parent
    return path


def check_disk() -> dict:
    minimum_mb = settings.LOUPE_HEALTH_MIN_FREE_MB
    result: dict = {"ok": True, "min_free_mb": minimum_mb}
    for name, path in (("media", settings.MEDIA_ROOT), ("models", settings.LOUPE_MODEL_DIR)):
        folder = _existing(Path(path))
        free_mb = shutil.disk_usage(folder).free // (1024 * 1024)
        # a disk remounted read-only after errors has space but takes no file
        writable = os.access(folder, os.W_OK)
        result[name] = {"ok": free_mb >= minimum_mb and writable, "free_mb": free_mb}
        if not writable:
            result[name]["error"] = "not writable"
        result["ok"] = result["ok"] and result[name]["ok"]
    return result


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "broker": check_broker,
    "workers": check_workers,
    "disk": check_disk,
}


def _run_in_thread(name: str, check: Callable[[], dict]) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        try:
            result = check()
        except Exception as error:  # a failing dependency is a result, not a crash
            logger.warning("health check %s failed", name, exc_info=True)
            result = {"ok": False, "error": f"unreachable ({type(error).__name__})"}
        result["ms"] = round((time.monotonic() - started) * 1000)
        outcome.update(result)

    thread = threading.Thread(target=run, name=f"loupe-health-{name}", daemon=True)
    thread.start()
    return thread, outcome


def health_report(*, deadline_s: float = DEADLINE_S) -> HealthReport:
    """Run every check at once; a check that has not answered by the deadline is reported as
    timed out (its thread ends on its own socket timeout). Never raises."""
    started = time.monotonic()
    running = {name: _run_in_thread(name, check) for name, check in CHECKS.items()}
    report = HealthReport()
    for name, (thread, outcome) in running.items():
        thread.join(max(0.0, deadline_s - (time.monotonic() - started)))
        if thread.is_alive() or not outcome:
            report.checks[name] = {"ok": False, "error": f"timed out after {deadline_s:g} s"}
        else:
            report.checks[name] = dict(outcome)
    return report
