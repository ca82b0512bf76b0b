"""Setup: a fresh database, Redis db and directories; the model, the line and the stations."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

from .config import BENCH_DIR, DB_NAME, MAX_STATIONS, PG_URL, REDIS_URL, ROOT


def reset_state() -> None:
    import psycopg
    import redis

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    for name in ("media", "models", "train-data", "logs"):
        shutil.rmtree(BENCH_DIR / name, ignore_errors=True)
    for name in ("media", "models", "logs"):
        (BENCH_DIR / name).mkdir(parents=True)


TRAIN_IMAGES = 400
TRAIN_EPOCHS = 8


def setup_django_world() -> dict:
    """Migrate, train and register a model, create the line and stations. Returns the handles."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ},
        check=True,
    )
    import django

    django.setup()
    from inspection import services
    from ml.engine.generator import generate_dataset
    from ml.services import set_active_version, train_and_register_model

    started = time.perf_counter()
    # a trained model, not a one-epoch one: an untrained map flags every image and makes region
    # extraction the worst case, which neither a line nor the peer (issue 13) would see
    generate_dataset(BENCH_DIR / "train-data", count=TRAIN_IMAGES, seed=7)
    version = train_and_register_model(
        data_dir=BENCH_DIR / "train-data", name="bench", epochs=TRAIN_EPOCHS
    )
    train_s = time.perf_counter() - started
    line = services.create_line(
        name="bench-line", level="full", latency_budget_ms=60_000, audit_fraction=0.0
    )
    set_active_version(line=line, model_version=version, changed_by="bench")
    stations = [
        services.create_station(line=line, name=f"station-{i:02d}") for i in range(MAX_STATIONS)
    ]
    return {
        "artifact": str(version.artifact_file),
        "train_s": train_s,
        "stations": stations,
        "tokens": [token for _, token in stations],
    }
