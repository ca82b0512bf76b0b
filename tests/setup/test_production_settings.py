"""The production settings as an operator gets them from docs/OPERATIONS.md: `check --deploy`
is clean with exactly the documented variables; a production install is https-only by default,
trusts a proxy's scheme header only when told to, and refuses malformed values; the embedded
mode still serves plain http on localhost and reports its tasks as run in process."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "OPERATIONS.md"


def documented_production_variables() -> dict[str, str]:
    """The /etc/loupe/loupe.env block of docs/OPERATIONS.md, with a generated SECRET_KEY in
    place of its placeholder."""
    block = re.search(r"```sh\n# /etc/loupe/loupe\.env[^\n]*\n(.*?)```", DOCS.read_text(), re.S)
    assert block, "docs/OPERATIONS.md lost its /etc/loupe/loupe.env block"
    variables = dict(
        line.split("=", 1) for line in block.group(1).splitlines() if line and line[0] != "#"
    )
    # the docs show the placeholder start-up refuses, and how to make a key
    assert variables["SECRET_KEY"] == "change-me-to-a-long-random-string"
    variables["SECRET_KEY"] = secrets.token_urlsafe(50)
    return variables


def manage(*args, env: dict, tmp_path: Path, var_dir: Path | None = None):
    """manage.py with only these variables, as a systemd unit starts it."""
    var_dir = var_dir or tmp_path
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LOUPE_VAR_DIR": str(var_dir)}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_deploy_is_clean_with_exactly_the_documented_variables(tmp_path):
    variables = documented_production_variables()
    checked = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=variables, tmp_path=tmp_path
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "System check identified no issues (0 silenced)." in checked.stdout
    listed = (ROOT / ".env.example").read_text()
    missing = [name for name in variables if not re.search(rf"^#? ?{name}=", listed, re.M)]
    assert not missing, f".env.example does not list {missing}"


SHOW = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'redirect': s.SECURE_SSL_REDIRECT, 'exempt': s.SECURE_REDIRECT_EXEMPT,"
    "'hsts': [s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD],"
    "'proxy': s.SECURE_PROXY_SSL_HEADER, 'origins': s.CSRF_TRUSTED_ORIGINS,"
    "'cookies': [s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE],"
    "'limits': s.LOUPE_TASK_TIME_LIMITS}))"
)
PRODUCTION = {
    "SECRET_KEY": "a-real-secret-for-this-test-only-0123456789-abcdefghijklmnop",
    "ALLOWED_HOSTS": "loupe.example",
    "DATABASE_URL": "postgresql://loupe@127.0.0.1/loupe",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}
DEFAULT_LIMITS = {"inference": [30, 60], "datasets": [3600, 3900], "training": [14400, 15000]}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {},
            {
                "redirect": False,
                "hsts": [0, False, False],
                "proxy": None,
                "origins": [],
                "cookies": [False, False],
            },
        ),
        (
            PRODUCTION,
            {
                "redirect": True,
                "hsts": [31536000, True, False],
                "proxy": None,  # a forwarded header is trusted only when asked
                "origins": [],
                "cookies": [True, True],
                "limits": DEFAULT_LIMITS,
            },
        ),
        (
            {
                **PRODUCTION,
                "LOUPE_TRUST_X_FORWARDED_PROTO": "1",
                "CSRF_TRUSTED_ORIGINS": "https://loupe.example, https://loupe.example:8443",
                "SECURE_HSTS_SECONDS": "3600",
                "SECURE_HSTS_PRELOAD": "1",
                "LOUPE_DATASETS_SOFT_TIME_LIMIT_S": "600",
            },
            {
                "redirect": True,
                "hsts": [3600, True, True],
                "proxy": ["HTTP_X_FORWARDED_PROTO", "https"],
                "origins": ["https://loupe.example", "https://loupe.example:8443"],
                "limits": {**DEFAULT_LIMITS, "datasets": [600, 900]},
            },
        ),
    ],
    ids=["embedded", "production-defaults", "production-behind-proxy"],
)
def test_tls_settings_come_from_the_environment(tmp_path, env, expected):
    shown = manage("shell", "-c", SHOW, env=env, tmp_path=tmp_path)
    assert shown.returncode == 0, shown.stderr[-3000:]
    settings = json.loads(shown.stdout.strip().splitlines()[-1])
    # a load balancer probes /health/, a Prometheus on the machine scrapes /metrics, over http
    assert settings["exempt"] == [r"^health/$", r"^metrics$"]
    assert {key: settings[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CSRF_TRUSTED_ORIGINS": "loupe.example"}, "CSRF_TRUSTED_ORIGINS entries need their"),
        ({"SECURE_HSTS_SECONDS": "a year"}, "SECURE_HSTS_SECONDS must be an integer"),
        (
            {"LOUPE_INFERENCE_SOFT_TIME_LIMIT_S": "90", "LOUPE_INFERENCE_HARD_TIME_LIMIT_S": "60"},
            "LOUPE_INFERENCE_HARD_TIME_LIMIT_S (60) must be above",
        ),
    ],
    ids=["origin-without-scheme", "hsts-not-a-number", "hard-limit-under-soft"],
)
def test_a_malformed_value_stops_startup_with_its_name(tmp_path, env, said):
    refused = manage("check", env={**PRODUCTION, **env}, tmp_path=tmp_path)
    assert refused.returncode != 0
    assert said in refused.stderr


def test_embedded_health_reports_tasks_run_in_process(tmp_path):
    shown = manage(
        "shell",
        "-c",
        "import json; from loupe.health import health_report; "
        "print(json.dumps(health_report().as_dict()))",
        env={},
        tmp_path=tmp_path,
        var_dir=tmp_path / "var",  # a fresh clone's var/, not there yet
    )
    assert shown.returncode == 0, shown.stderr[-3000:]
    report = json.loads(shown.stdout.strip().splitlines()[-1])
    assert report["status"] == "ok", report
    checks = report["checks"]
    assert checks["broker"]["mode"] == checks["workers"]["mode"] == "in process"
    assert checks["database"]["ok"] and checks["disk"]["ok"]
