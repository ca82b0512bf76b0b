"""/health/ against the real PostgreSQL, Redis and a Celery worker process: 200 when every
check passes; 503 naming the failing ones when a queue has no worker, the broker cannot be
reached or the disk is short; always JSON, quickly, without a login, and without secrets."""

import socket
import time

import pytest
from django.conf import settings as django_settings

pytestmark = pytest.mark.django_db(transaction=True)

QUEUES = ["inference", "datasets", "batch", "training"]


@pytest.fixture(scope="module")
def worker(start_worker):
    # one worker on every queue, as the smallest production install runs them
    worker = start_worker("health", queues=",".join(QUEUES))
    yield worker
    worker.stop()


def probe(client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/health/")  # anonymous, as a load balancer asks
    elapsed = time.monotonic() - started
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    return response.status_code, response.json(), elapsed


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_all_checks_pass_with_a_worker_on_every_queue(client, worker, settings):
    status, body, elapsed = probe(client)
    assert status == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    checks = body["checks"]
    assert {name: check["ok"] for name, check in checks.items()} == {
        "database": True,
        "broker": True,
        "workers": True,
        "disk": True,
    }
    assert checks["workers"]["queues"] == {"inference": 1, "datasets": 1, "batch": 1, "training": 1}
    assert checks["disk"]["media"]["free_mb"] >= settings.LOUPE_HEALTH_MIN_FREE_MB
    assert elapsed < 3
    # open to anyone: nothing names a host, database, folder or secret
    text = str(body)
    for secret in (
        django_settings.CELERY_BROKER_URL,
        django_settings.DATABASES["default"]["NAME"],
        str(settings.MEDIA_ROOT),
        django_settings.SECRET_KEY,
        "127.0.0.1",
    ):
        assert secret not in text


def test_a_queue_without_a_worker_fails_the_probe(client, worker, settings):
    settings.LOUPE_HEALTH_QUEUES = [*QUEUES, "reports"]
    status, body, _ = probe(client)
    assert status == 503
    assert body["failing"] == ["workers"]
    workers = body["checks"]["workers"]
    assert workers["queues"] == {
        "inference": 1,
        "datasets": 1,
        "batch": 1,
        "training": 1,
        "reports": 0,
    }
    assert workers["error"] == "no worker for reports"


def test_a_stopped_worker_fails_its_queues(client, start_worker, settings):
    # the module's worker takes the usual queues; this one alone consumes its own
    alone = start_worker("health-alone", queues="health-only")
    settings.LOUPE_HEALTH_QUEUES = ["health-only"]
    try:
        assert probe(client)[0] == 200
        alone.stop()
        status, body, _ = probe(client)
    finally:
        alone.stop()
    assert status == 503
    assert body["checks"]["workers"]["queues"] == {"health-only": 0}


def test_an_unreachable_broker_gives_503_quickly_with_the_database_still_ok(
    client, worker, monkeypatch
):
    # Celery reads the variable before its own settings, as a restarted process would
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{closed_port()}/5")
    status, body, elapsed = probe(client)
    assert status == 503
    assert body["failing"] == ["broker", "workers"]
    assert body["checks"]["broker"]["error"].startswith("unreachable (")
    assert body["checks"]["database"]["ok"] is True
    assert elapsed < 3


def test_a_broker_that_accepts_but_never_answers_gives_503_within_the_deadline(
    client, worker, monkeypatch
):
    """A hung broker (the connection opens, nothing ever answers) must not hang the probe."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes handshakes; nobody reads or writes
        monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{silent.getsockname()[1]}/5")
        status, body, elapsed = probe(client)
    assert status == 503
    assert body["failing"] == ["broker", "workers"]
    assert body["checks"]["database"]["ok"] is True
    assert elapsed < 4


@pytest.mark.parametrize("database", ["stopped", "hung"])
def test_an_unreachable_database_gives_503_within_the_deadline(
    client, worker, monkeypatch, database
):
    from django.db import connection

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        if database == "hung":
            silent.listen(8)  # accepts connections, never answers
        port = silent.getsockname()[1] if database == "hung" else closed_port()
        # the probe's own connection reads these; the test's open connection is not touched
        monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
        monkeypatch.setitem(connection.settings_dict, "PORT", port)
        status, body, elapsed = probe(client)
    assert status == 503
    assert body["failing"] == ["database"]
    assert body["checks"]["database"]["error"].startswith("unreachable (")
    assert elapsed < 4


def test_too_little_free_disk_fails_the_probe(client, worker, settings):
    settings.LOUPE_HEALTH_MIN_FREE_MB = 10**9  # a petabyte
    status, body, _ = probe(client)
    assert status == 503
    assert body["failing"] == ["disk"]
    disk = body["checks"]["disk"]
    assert disk["media"]["ok"] is False and disk["models"]["ok"] is False


def test_the_probe_is_not_redirected_to_https_while_pages_are(client, worker, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/health/").status_code == 200
    page = client.get("/login/")
    assert page.status_code == 301 and page["Location"].startswith("https://")
