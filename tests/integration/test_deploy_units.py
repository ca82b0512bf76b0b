"""The systemd units in deploy/systemd: systemd-analyze accepts them, and the web unit's own
gunicorn command line serves Loupe over plain http as nginx reaches it: /health/ answers
(never redirected), pages redirect to https unless the proxy says the request was https, and
then carry HSTS."""

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "deploy" / "systemd"
VENV_BIN = Path(sys.executable).parent


def installed_here(text: str) -> str:
    """A unit as it would be installed from this checkout instead of /opt/loupe."""
    return text.replace("/opt/loupe/.venv/bin", str(VENV_BIN)).replace("/opt/loupe", str(ROOT))


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not here")
def test_systemd_accepts_every_unit(tmp_path):
    for unit in UNITS.iterdir():
        (tmp_path / unit.name).write_text(installed_here(unit.read_text()))
    names = [
        "loupe.target",
        "loupe-web.service",
        "loupe-beat.service",
        "loupe-worker@inference.service",
        "loupe-worker@datasets.service",
        "loupe-worker@training.service",
        "loupe-backup.service",
        "loupe-backup.timer",
    ]
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "loupe" not in verified.stdout + verified.stderr  # no warning about our units


def web_command(port: int) -> list[str]:
    """loupe-web.service's ExecStart, with its ${...} filled in and a free port."""
    unit = installed_here((UNITS / "loupe-web.service").read_text())
    command = re.search(r"^ExecStart=(.*?[^\\])$", unit.replace("\\\n", " "), re.M).group(1)
    command = command.replace("${LOUPE_WEB_WORKERS}", "1").replace("${LOUPE_WEB_THREADS}", "2")
    return shlex.split(command.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))


@pytest.fixture
def web(transactional_db, tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db = connection.settings_dict
    # the unit's production defaults, not the suite's plain http (tests/conftest.py)
    inherited = {k: v for k, v in os.environ.items() if k != "SECURE_SSL_REDIRECT"}
    env = {
        **inherited,
        "DATABASE_URL": f"postgresql://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "ALLOWED_HOSTS": "loupe.example",
        "LOUPE_TRUST_X_FORWARDED_PROTO": "1",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "LOUPE_MODEL_DIR": str(tmp_path / "models"),
    }
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        web_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(base + "/health/", headers={"Host": "loupe.example"}, timeout=5)
            break
        # a first answer slower than the timeout (imports on a busy machine) is not a failure
        except (requests.ConnectionError, requests.Timeout):
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
    yield base
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_the_web_unit_serves_health_over_http_and_pages_only_over_https(web):
    host = {"Host": "loupe.example"}
    health = requests.get(web + "/health/", headers=host, timeout=10)
    assert health.status_code in (200, 503)  # no worker runs here: workers may fail
    assert health.headers["Content-Type"] == "application/json"
    assert health.json()["checks"]["database"]["ok"] is True

    plain = requests.get(web + "/login/", headers=host, allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://loupe.example/login/"

    proxied = requests.get(
        web + "/login/", headers={**host, "X-Forwarded-Proto": "https"}, timeout=10
    )
    assert proxied.status_code == 200
    assert proxied.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
