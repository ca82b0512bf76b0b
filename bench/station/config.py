"""Where the run lives, its constants, the environment of its processes, and its log lines."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the spawned ceiling processes inherit sys.path from here, so they find ml.engine too
sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "var" / "bench"
DB_NAME = "loupe_bench"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
QUEUE = "inference"

POOL_SIZE = 64
MAX_STATIONS = 16
CEILING_BATCHES = (1, 8, 32)
# (processes, torch threads per process): the two ways to fill 2 cores
CEILING_LAYOUTS = ((1, 2), (2, 1))
CONCURRENCY = (1, 2, 4, 8, 16)
# CPU used by anything outside the bench above which a run's timings are flagged as disturbed
DISTURBED_CORES = 0.1


def bench_env() -> dict[str, str]:
    """The environment of every process of the run; it overrides the caller's (make's)."""
    return {
        "DJANGO_SETTINGS_MODULE": "loupe.settings",
        "DATABASE_URL": f"{PG_URL}/{DB_NAME}",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "MEDIA_ROOT": str(BENCH_DIR / "media"),
        "LOUPE_MODEL_DIR": str(BENCH_DIR / "models"),
        "LOUPE_TORCH_THREADS": "1",
        # production settings: DEBUG=1 would keep every SQL query in memory and slow requests
        "DEBUG": "0",
        # plain http on 127.0.0.1, without the TLS proxy a real install has
        "SECURE_SSL_REDIRECT": "0",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)
