"""A fresh clone on a fresh machine: the operator commands run embedded with no variable set,
and outside the embedded mode a missing secret is named, with where to set it."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOUPE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY")


def manage(*args, var_dir: Path, **env):
    clean = {k: v for k, v in os.environ.items() if k not in LOUPE_VARIABLES + ("DEBUG",)}
    clean.update(LOUPE_VAR_DIR=str(var_dir), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=300,
    )


def secret_key_of(var_dir: Path) -> str:
    shown = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        var_dir=var_dir,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    return shown.stdout.strip().splitlines()[-1]  # after shell's note on its auto-imports


def test_operator_commands_run_embedded_with_nothing_set(tmp_path):
    var_dir = tmp_path / "clone" / "var"  # as in a fresh clone: not there yet
    migrated = manage("migrate", "--noinput", "-v", "0", var_dir=var_dir)
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    created = manage("create_line", "press-4", var_dir=var_dir)
    assert created.returncode == 0, created.stderr[-2000:]
    assert (var_dir / "loupe.sqlite3").exists()
    key_file = var_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = secret_key_of(var_dir)
    assert len(first) >= 50 and first == secret_key_of(var_dir) == key_file.read_text().strip()
    debug = manage(
        "shell", "-c", "from django.conf import settings; print(settings.DEBUG)", var_dir=var_dir
    )
    assert debug.stdout.strip().splitlines()[-1] == "False"


PRODUCTION = {
    "DATABASE_URL": "postgresql://loupe@127.0.0.1/loupe",
    "ALLOWED_HOSTS": "loupe.example",
}
REAL_SECRET = "a-real-secret-for-this-test-only-0123456789-abcdefghijklmnop"


@pytest.mark.parametrize(
    ("env", "said"),
    [
        # a missing secret names what to set, and where
        ({}, ["SECRET_KEY must be set", "ALLOWED_HOSTS", ".env.example"]),
        ({"SECRET_KEY": "change-me-to-a-long-random-string"}, ["placeholder"]),
        # 49 characters: too short to sign sessions with
        ({"SECRET_KEY": REAL_SECRET[:49]}, ["SECRET_KEY has 49 characters", "at least 50"]),
        # a database without a broker would run every task inside a web request
        ({"SECRET_KEY": REAL_SECRET}, ["CELERY_BROKER_URL must be set"]),
    ],
    ids=["no-secret", "placeholder-secret", "short-secret", "no-broker"],
)
def test_outside_embedded_mode_a_bad_setup_stops_with_what_to_set(tmp_path, env, said):
    refused = manage("check", var_dir=tmp_path / "var", **PRODUCTION, **env)
    assert refused.returncode != 0
    for words in said:
        assert words in refused.stderr
