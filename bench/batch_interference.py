"""Batch interference: does a 2,000-image batch prediction delay a station?

One run, self-contained and repeatable (see bench/README.md):

1. setup: its own PostgreSQL database (loupe_batch_bench), Redis db (14 unless
   BENCH_REDIS_URL says otherwise) and files under var/bench-batch/; migrate, train a
   one-epoch model on 96 generated images, a "full" line with the default 1,000 ms latency
   budget and no audit, one station;
2. services as production runs them: gunicorn, an inference worker (-Q inference) and a batch
   worker (-Q batch, concurrency 1), each worker at LOUPE_TORCH_THREADS=1;
3. one station posting images back to back: `--seconds` before the batch, during a batch of
   `--images` distinct images (started with datasets.dispatch.start_batch, as the page and the
   command do), and `--seconds` after it. During the batch, rounds of `--round-seconds`
   alternate between the batch worker running and stopped (SIGSTOP): on a shared machine the
   load of other processes drifts by more than the effect measured, and interleaved rounds
   meet the same drift;
4. figures: the station's p50 / p99 / max latency per window, how much the p50 of the rounds
   with the batch running rose over the rounds with it stopped (and over before + after), every
   answer that was not a model decision, and every prediction of a station item that finished
   after the line's budget; the batch's images/s while running.

Prints JSON and writes var/bench-batch/results.json. Exit status 1 when the requirement
(p50 up by at most 20%, no item over its budget) does not hold.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from station.cpu import LoadWatch  # noqa: E402
from station.end_to_end import percentile  # noqa: E402
from station.images import image_pool, tagged_png  # noqa: E402
from station.load import drive  # noqa: E402
from station.processes import Service, free_port, http_ok  # noqa: E402

BENCH_DIR = ROOT / "var" / "bench-batch"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DB_NAME", "loupe_batch_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
LOGS = BENCH_DIR / "logs"
MAX_P50_RISE = 0.20


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def bench_env() -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "loupe.settings",
        "DATABASE_URL": f"{PG_URL}/{DB_NAME}",
        "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "MEDIA_ROOT": str(BENCH_DIR / "media"),
        "LOUPE_MODEL_DIR": str(BENCH_DIR / "models"),
        "LOUPE_TORCH_THREADS": "1",
        "DEBUG": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def worker(name: str, queue: str, concurrency: int) -> Service:
    return Service(
        name,
        [
            sys.executable, "-m", "celery", "-A", "loupe", "worker", "-Q", queue,
            "--pool=prefork", f"--concurrency={concurrency}", "-l", "info", "-n", f"{name}@%h",
            "--without-gossip", "--without-mingle",
        ],
        LOGS,
    )  # fmt: skip


def wait_for(what: str, ready, services: list[Service], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            service.check_alive()
        if ready():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def setup() -> dict:
    import shutil

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
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT, env={**os.environ}, check=True,
    )  # fmt: skip
    import django

    django.setup()
    from inspection import services
    from ml.engine.generator import generate_dataset
    from ml.services import set_active_version, train_and_register_model

    generate_dataset(BENCH_DIR / "train-data", count=96, seed=7)
    version = train_and_register_model(data_dir=BENCH_DIR / "train-data", name="bench", epochs=1)
    line = services.create_line(name="bench-line", level="full", audit_fraction=0.0)
    set_active_version(line=line, model_version=version, changed_by="bench")
    tokens = [services.create_station(line=line, name=f"station-{i:02d}")[1] for i in range(2)]
    line.refresh_from_db()
    return {"line": line, "token": tokens[0], "tokens": tokens}


def batch_zip(pool: list[bytes], count: int) -> Path:
    """`count` distinct camera-like PNGs (each with its own tEXt chunk, so each is stored)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for number in range(count):
            zf.writestr(
                f"lot-7/{number:05d}.png", tagged_png(pool[number % len(pool)], f"b{number}")
            )
    path = BENCH_DIR / "batch.zip"
    path.write_bytes(buffer.getvalue())
    return path


def window(name: str, results: list[dict]) -> dict:
    ok = [r for r in results if r["error"] is None]
    latencies = [(r["end"] - r["start"]) * 1000 for r in ok]
    return {
        "window": name,
        "requests": len(results),
        "errors": len(results) - len(ok),
        "error_samples": sorted({r["error"] for r in results if r["error"]})[:5],
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies, default=float("nan")),
        "worker_model_ms_p50": statistics.median(
            [r["model_ms"] for r in ok if r["model_ms"] is not None] or [float("nan")]
        ),
    }


def drive_interleaved(token, port, pool, batch_worker: Service, busy, round_s: float):
    """One station posting back to back in rounds of `round_s` while busy() is true; every
    second round the batch worker is stopped (SIGSTOP), so rounds with and without the batch
    meet the same load from the rest of the machine. Returns (with batch, without batch,
    seconds the batch ran)."""
    running: list[dict] = []
    paused: list[dict] = []
    round_number, running_s = 0, 0.0
    try:
        while busy():
            if round_number % 2:
                os.killpg(batch_worker.process.pid, signal.SIGSTOP)
                paused += drive([token], port, pool, 1, f"paused{round_number}", round_s)
                os.killpg(batch_worker.process.pid, signal.SIGCONT)
            else:
                started = time.monotonic()
                running += drive([token], port, pool, 1, f"during{round_number}", round_s)
                running_s += time.monotonic() - started
            round_number += 1
    finally:
        os.killpg(batch_worker.process.pid, signal.SIGCONT)
    return running, paused, running_s


def budget_misses(line, windows: list[str]) -> dict:
    """Per window: station items whose prediction finished after the line's budget, and items
    given any fail-safe (the station's answer would not have been the model's)."""
    from inspection.models import Inspection, Prediction

    misses = {}
    for name in windows:
        # rounds are tagged before-, during0-, paused1-, during2-, ..., after-
        items = Inspection.objects.filter(line=line, external_id__regex=rf"^{name}[0-9]*-")
        misses[name] = {
            "items": items.count(),
            "late_predictions": Prediction.objects.filter(
                inspection__in=items, is_late=True
            ).count(),
            "fail_safes": items.exclude(fail_safe_reason="").count(),
        }
    return misses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="images in the batch")
    parser.add_argument("--seconds", type=float, default=20.0, help="per window without a batch")
    parser.add_argument(
        "--round-seconds", type=float, default=2.0, help="rounds with and without the batch"
    )
    args = parser.parse_args()

    os.environ.update(bench_env())
    log(f"resetting {DB_NAME}, {REDIS_URL} and {BENCH_DIR}; training a one-epoch model")
    world = setup()
    line = world["line"]
    pool = image_pool()
    archive = batch_zip(pool, args.images)
    log(f"{args.images} images zipped: {archive.stat().st_size / 1e6:.1f} MB")

    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "loupe.wsgi", "-k", "gthread"]
    gunicorn += ["--threads", "8", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    services = [worker("inference", "inference", 2), worker("batch", "batch", 1)]
    services.append(Service("gunicorn", gunicorn, LOGS))
    results: dict = {
        "cpus": os.cpu_count(),
        "images": args.images,
        "budget_ms": line.latency_budget_ms,
    }
    try:
        wait_for("gunicorn", lambda: http_ok(port, "/login/"), services)
        for service in services[:2]:
            wait_for(service.name, lambda s=service: "ready." in s.log_path.read_text(), services)
        from django.db import connections

        connections.close_all()
        # two stations at once, so both inference processes have served items before the clock
        warm = drive(world["tokens"], port, pool, 2, "warm", 5.0)
        log(f"warm-up: {len(warm)} requests")

        watch = LoadWatch("before")
        before = drive([world["token"]], port, pool, 1, "before", args.seconds)
        results["load_before"] = watch.result()

        from datasets import batch, dispatch
        from datasets.models import BatchPrediction

        started = time.monotonic()
        record = dispatch.start_batch(
            line=line, archive=batch.keep_file(archive), source_name=archive.name
        )
        connections.close_all()

        def running() -> bool:
            for service in services:
                service.check_alive()
            state = BatchPrediction.objects.filter(pk=record.pk).values_list("state", flat=True)
            connections.close_all()
            return state[0] not in ("done", "failed")

        watch = LoadWatch("during")
        during, paused, running_s = drive_interleaved(
            world["token"], port, pool, services[1], running, args.round_seconds
        )
        batch_s = time.monotonic() - started
        results["load_during"] = watch.result()
        record.refresh_from_db()
        log(f"batch {record.state}: {record.done} of {record.total} in {batch_s:.1f}s")

        watch = LoadWatch("after")
        after = drive([world["token"]], port, pool, 1, "after", args.seconds)
        results["load_after"] = watch.result()
    finally:
        for service in services:
            service.stop()

    windows = [
        window("before", before),
        window("during (batch running)", during),
        window("during (batch stopped)", paused),
        window("after", after),
    ]
    # the comparison that counts: rounds interleaved in time, with the batch running and with
    # it stopped, so the rest of the machine's load weighs on both alike
    rise = windows[1]["p50_ms"] / windows[2]["p50_ms"] - 1
    sequential = window("before and after", before + after)
    misses = budget_misses(line, ["before", "during", "paused", "after"])
    batch_log = (BENCH_DIR / "logs" / "batch.log").read_text()
    results.update(
        windows=windows,
        p50_rise=rise,
        p50_rise_against_before_and_after=windows[1]["p50_ms"] / sequential["p50_ms"] - 1,
        budget=misses,
        batch={
            "state": record.state,
            "done": record.done,
            "failed": record.failed_count,
            "seconds_with_pauses": batch_s,
            "seconds_running": running_s,
            "images_per_s_running": record.done / running_s,
            "worker_yields": "runs at nice" in batch_log,
        },
        holds=rise <= MAX_P50_RISE
        and misses["during"]["late_predictions"] == misses["during"]["fail_safes"] == 0
        and windows[1]["errors"] == 0
        and record.state == "done",
    )
    text = json.dumps(results, indent=2)
    (BENCH_DIR / "results.json").write_text(text)
    print(text)
    return 0 if results["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
