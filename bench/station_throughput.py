"""Station throughput: the model's ceiling against the full API path, on the same cores.

One run, self-contained and repeatable (see bench/README.md):

1. setup: its own PostgreSQL database (loupe_bench), Redis db 13 and files under var/bench/;
   migrate, train a one-epoch model on 96 generated images, a "full" line with a 60 s budget
   (no fail-safe can fire) and no audit, 16 stations;
2. ceiling: a tight loop that decodes the posted PNG bytes and runs DefectModel.predict, for
   batch 1/8/32 at 1 process x 2 torch threads and 2 processes x 1 thread; the best is the
   ceiling. The raw per-image time is batch 1, one process, one thread;
3. the Celery message the API sends, read back from Redis with no worker running;
4. end to end: gunicorn (gthread) + a prefork Celery worker (2 processes x 1 torch thread) and
   1..16 station threads posting images back to back over keep-alive HTTP.

Run with `make bench` (or `.venv/bin/python bench/station_throughput.py`). Figures are printed
and written to var/bench/results.json.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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
        "SECRET_KEY": "bench-" + uuid.uuid4().hex + uuid.uuid4().hex,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# Images -----------------------------------------------------------------------------------


def image_pool(count: int = POOL_SIZE, seed: int = 20240) -> list[bytes]:
    """Product images as a camera would post them: the generator's default 128 px PNGs."""
    import numpy as np

    from ml.engine.generator import SurfaceConfig, render_surface

    pool = []
    for index in range(count):
        image, _ = render_surface(np.random.default_rng([seed, index]), SurfaceConfig())
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pool.append(buffer.getvalue())
    return pool


def tagged_png(png: bytes, tag: str) -> bytes:
    """The same pixels with a tEXt chunk after IHDR, so every post is new content.

    Images are stored by content hash: a repeated image would skip the write and fsync that
    every real (never identical) camera image costs.
    """
    data = b"loupe-bench\0" + tag.encode()
    crc = struct.pack(">I", zlib.crc32(b"tEXt" + data))
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + crc
    return png[:33] + chunk + png[33:]  # 8-byte signature + 25-byte IHDR chunk


# Setup ------------------------------------------------------------------------------------


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
    from ml.inference import artifact_path
    from ml.services import train_and_register_model

    started = time.perf_counter()
    generate_dataset(BENCH_DIR / "train-data", count=96, seed=7)
    version = train_and_register_model(data_dir=BENCH_DIR / "train-data", name="bench", epochs=1)
    train_s = time.perf_counter() - started
    line = services.create_line(
        name="bench-line", level="full", latency_budget_ms=60_000, audit_fraction=0.0
    )
    services.activate_model(line=line, model_version=version, changed_by="bench")
    stations = [
        services.create_station(line=line, name=f"station-{i:02d}") for i in range(MAX_STATIONS)
    ]
    return {
        "artifact": str(artifact_path(version)),
        "train_s": train_s,
        "stations": stations,
        "tokens": [token for _, token in stations],
    }


def web_side_costs(pool: list[bytes]) -> dict:
    """What the web process does per image besides the HTTP and SQL work, timed in-process."""
    from django.conf import settings

    from inspection import storage
    from inspection.images import validate_image

    def validate(data: bytes):
        return validate_image(
            data,
            max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
            max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS,
        )

    validate_ms, store_ms = [], []
    for i in range(100):
        data = tagged_png(pool[i % len(pool)], f"probe-{i}")
        t0 = time.perf_counter()
        image = validate(data)
        t1 = time.perf_counter()
        storage.store_image(image.data, sha256=image.sha256, extension=image.extension)
        t2 = time.perf_counter()
        validate_ms.append((t1 - t0) * 1000)
        store_ms.append((t2 - t1) * 1000)
    return {
        "validate_image_ms_p50": statistics.median(validate_ms),
        "store_image_ms_p50": statistics.median(store_ms),
    }


def task_body_cost(station, pool: list[bytes], count: int = 80, warm: int = 10) -> dict:
    """services.predict_and_route run in process, without Celery: the worker's task body."""
    from django.conf import settings
    from django.db import connections

    from inspection import services
    from inspection.images import validate_image
    from inspection.models import Prediction

    ids = []
    for i in range(count):
        png = tagged_png(pool[i % len(pool)], f"task-probe-{i}")
        image = validate_image(
            png,
            max_bytes=settings.LOUPE_MAX_IMAGE_BYTES,
            max_pixels=settings.LOUPE_MAX_IMAGE_PIXELS,
        )
        inspection, _ = services.receive_inspection(
            station=station, external_id=f"bench-task-probe-{i}", image=image, metadata={}
        )
        ids.append(inspection.pk)
    half = len(ids) // 2
    total_ms, reconnect_ms = [], []
    for n, inspection_id in enumerate(ids):
        if n >= half:
            # what Celery's Django fixup does around every task unless CELERY_DB_REUSE_MAX is set
            connections.close_all()
        t0 = time.perf_counter()
        services.predict_and_route(inspection_id=inspection_id)
        (total_ms if n < half else reconnect_ms).append((time.perf_counter() - t0) * 1000)
    model_ms = list(
        Prediction.objects.filter(inspection_id__in=ids[warm:half]).values_list(
            "latency_ms", flat=True
        )
    )
    total, model = statistics.median(total_ms[warm:]), statistics.median(model_ms)
    return {
        "total_ms_p50": total,
        "model_ms_p50": model,
        "rest_ms_p50": total - model,
        "with_new_db_connection_ms_p50": statistics.median(reconnect_ms),
    }


def celery_message_probe(station, pool: list[bytes]) -> dict:
    """Enqueue one prediction the way the API does, with no worker running, and read it back."""
    import base64

    import redis

    from inspection import services, tasks
    from inspection.images import validate_image

    png = tagged_png(pool[0], "message-probe")
    image = validate_image(png, max_bytes=len(png), max_pixels=10**8)
    inspection, _ = services.receive_inspection(
        station=station, external_id="bench-message-probe", image=image, metadata={}
    )
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(QUEUE)
    tasks.enqueue_prediction(inspection.pk)
    raw = client.lrange(QUEUE, 0, -1)
    # the worker must never see the probe: its inspection stays unrouted on purpose
    client.delete(QUEUE)
    if len(raw) != 1:
        raise RuntimeError(f"expected one message on {QUEUE!r}, found {len(raw)}")
    envelope = json.loads(raw[0])
    body = base64.b64decode(envelope["body"])
    args, kwargs, _embed = json.loads(body)
    return {
        "message_bytes": len(raw[0]),
        "body_bytes": len(body),
        "task": envelope["headers"]["task"],
        "args": args,
        "kwargs": kwargs,
        "image_bytes": len(png),
        "id_only": args == [inspection.pk] and not kwargs,
    }


# Ceiling ----------------------------------------------------------------------------------


def _ceiling_process(conn, artifact: str, pool: list[bytes]) -> None:
    """Loads the artifact once, then runs (batch, threads, window) jobs sent by the parent.

    The parent gives every process the same absolute window (time.time()), so the processes
    of one layout warm up together and are measured over the same seconds.
    """
    import torch
    from PIL import Image

    from ml.engine.artifact import load_artifact

    model = load_artifact(Path(artifact))
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        batch, threads, start_at, end_at = job
        torch.set_num_threads(threads)
        i = 0

        def step(batch: int) -> None:
            nonlocal i
            images = []
            for _ in range(batch):
                image = Image.open(io.BytesIO(pool[i % len(pool)]))
                image.load()
                images.append(image)
                i += 1
            model.predict(images)

        step(batch)  # at least one warm call, however late the window starts
        while time.time() < start_at:
            step(batch)
        calls, t0 = [], time.perf_counter()
        while not calls or time.time() < end_at:
            c0 = time.perf_counter()
            step(batch)
            calls.append(time.perf_counter() - c0)
        conn.send(
            {"images": len(calls) * batch, "elapsed": time.perf_counter() - t0, "calls": calls}
        )


def model_split(artifact: str, pool: list[bytes], rounds: int = 3) -> dict:
    """One image at a time on one thread: where DefectModel.predict's time goes.

    extract_regions runs only for images the model flags, so its share depends on the model.
    """
    import torch
    from PIL import Image

    from ml.engine.artifact import load_artifact

    torch.set_num_threads(1)
    model = load_artifact(Path(artifact))
    parts: dict[str, list[float]] = {"decode": [], "preprocess": [], "network": [], "regions": []}
    flagged = 0
    for n in range(rounds * len(pool)):
        t0 = time.perf_counter()
        image = Image.open(io.BytesIO(pool[n % len(pool)]))
        image.load()
        t1 = time.perf_counter()
        batch = model.preprocess([image])
        t2 = time.perf_counter()
        probabilities, maps = model.infer(batch)
        t3 = time.perf_counter()
        model.extract_regions(maps[0], float(probabilities[0]), image.size)
        t4 = time.perf_counter()
        for name, seconds in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            parts[name].append(seconds * 1000)
        if n < len(pool) and float(probabilities[0]) >= model.image_threshold:
            flagged += 1
    split = {f"{name}_ms_mean": statistics.mean(values) for name, values in parts.items()}
    return split | {"flagged": flagged, "images": len(pool)}


def measure_ceiling(artifact: str, pool: list[bytes], *, warm_s: float, measure_s: float) -> dict:
    ctx = mp.get_context("spawn")  # a fork of this process would inherit torch's thread pools
    pipes, procs = [], []
    for _ in range(max(p for p, _ in CEILING_LAYOUTS)):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_ceiling_process, args=(child, artifact, pool), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for pipe in pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("ceiling process failed to start")

        def run(processes: int, threads: int, batch: int) -> dict:
            start_at = time.time() + 0.2 + warm_s
            for pipe in pipes[:processes]:
                pipe.send((batch, threads, start_at, start_at + measure_s))
            results = [pipe.recv() for pipe in pipes[:processes]]
            calls = [c for r in results for c in r["calls"]]
            return {
                "processes": processes,
                "threads": threads,
                "batch": batch,
                "images_per_s": sum(r["images"] / r["elapsed"] for r in results),
                "call_ms_p50": statistics.median(calls) * 1000,
                "per_image_ms_p50": statistics.median(calls) * 1000 / batch,
            }

        raw = run(1, 1, 1)
        configs = []
        for processes, threads in CEILING_LAYOUTS:
            for batch in CEILING_BATCHES:
                configs.append(run(processes, threads, batch))
                c = configs[-1]
                log(
                    f"  ceiling {processes}x{threads} batch {batch:>2}: "
                    f"{c['images_per_s']:7.1f} img/s"
                )
    finally:
        for pipe in pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
    best = max(configs, key=lambda c: c["images_per_s"])
    return {
        "raw_per_image_ms": raw["per_image_ms_p50"],
        "raw_1x1_images_per_s": raw["images_per_s"],
        "configs": configs,
        "best": best,
        "images_per_s": best["images_per_s"],
    }


# Services ---------------------------------------------------------------------------------


class Service:
    """A subprocess in its own session, so stopping it takes its children (pool, workers) too."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.log_path = BENCH_DIR / "logs" / f"{name}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = self.log_path.read_text()[-3000:]
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(what: str, ready, services: list[Service], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for service in services:
            service.check_alive()
        if ready():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s")


def http_ok(port: int, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status == 200
    except OSError:
        return False


def worker_answers_ping() -> bool:
    from loupe.celery import app

    return bool(app.control.ping(timeout=0.5))


def celery_round_trip(count: int = 60, warm: int = 10) -> dict:
    """A built-in no-op task through the same broker, worker and result backend, one at a time:
    what Celery alone adds to a request, with nothing of Loupe's in the task."""
    from loupe.celery import app

    times = []
    for _ in range(count):
        t0 = time.perf_counter()
        app.send_task("celery.accumulate", args=(1,), queue=QUEUE).get(timeout=30)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times[warm:]), "count": count - warm}


# CPU accounting ---------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stats():
    """(pid, command name, the /proc/PID/stat fields after the name) of every live process."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it exited while we looked
        yield (
            int(entry),
            text[text.find("(") + 1 : text.rfind(")")],
            text[text.rfind(")") + 2 :].split(),
        )


def session_cpu_s(session_id: int) -> float:
    """CPU seconds of the live processes of one session (a service and all its children)."""
    total = 0
    for _pid, _comm, fields in proc_stats():
        if int(fields[3]) == session_id:
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def machine_busy_s() -> float:
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def pg_sessions() -> int:
    """Sessions ever opened to the bench database: a new connection per request shows here."""
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", (DB_NAME,)
        ).fetchone()
    return int(row[0])


def cpu_snapshot(web: Service, worker: Service) -> dict:
    times = os.times()
    return {
        "web": session_cpu_s(web.process.pid),
        "worker": session_cpu_s(worker.process.pid),
        "client": times.user + times.system,
        "machine": machine_busy_s(),
    }


def process_table() -> dict[int, tuple[int, float, float, bool]]:
    """pid -> (parent pid, own CPU s, reaped children's CPU s, is a measured service)."""
    table = {}
    for pid, comm, fields in proc_stats():
        own = (int(fields[11]) + int(fields[12])) / CLK_TCK
        reaped = (int(fields[13]) + int(fields[14])) / CLK_TCK
        # PostgreSQL and Redis are part of the measured path, and kernel threads (children of
        # kthreadd, pid 2) carry its network and disk work
        service = comm.startswith(("postgres", "redis-server")) or 2 in (pid, int(fields[1]))
        table[pid] = (int(fields[1]), own, reaped, service)
    return table


class LoadWatch:
    """What else used the CPU during a window: another test run or a training job on the
    same cores would make a disturbed run look like a clean one.

    Processes still running are reported by name. CPU that no living process accounts for
    (commands that came and went inside the window, in another session) shows as
    `other_cores` with them.
    """

    def __init__(self, window: str) -> None:
        self.window = window
        self.before = process_table()
        self.busy = machine_busy_s()
        self.started = time.monotonic()

    def ours(self, pid: int, table: dict) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            if pid == os.getpid():
                return True
            seen.add(pid)
            pid = table.get(pid, self.before.get(pid, (0,)))[0]
        return False

    def result(self, min_cpu_s: float = 0.5) -> dict:
        after = process_table()
        seconds = time.monotonic() - self.started
        busy = machine_busy_s() - self.busy
        accounted, foreign, processes = 0.0, 0.0, []
        for pid, (_, own, reaped, service) in after.items():
            _, own0, reaped0, _ = self.before.get(pid, (0, 0.0, 0.0, False))
            used = own - own0
            accounted += used
            if service or self.ours(pid, after):
                # their reaped children (a task's PostgreSQL backend, a ceiling process)
                # ran in the window as part of the measurement
                accounted += reaped - reaped0
                continue
            foreign += used
            if used >= min_cpu_s:
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                except OSError:
                    cmdline = b"?"
                processes.append(f"pid {pid} used {used:.1f} CPU s: {cmdline.decode()[:90]}")
        other_cores = (foreign + max(busy - accounted, 0.0)) / seconds
        return {
            "window": self.window,
            "seconds": seconds,
            "other_cores": other_cores,
            "processes": processes,
        }


# End to end -------------------------------------------------------------------------------


class Station(threading.Thread):
    """One camera station: posts images back to back on one keep-alive connection."""

    def __init__(self, index, token, port, pool, tag, start_at, end_at) -> None:
        super().__init__(daemon=True)
        self.index, self.token, self.port, self.pool, self.tag = index, token, port, pool, tag
        self.start_at, self.end_at = start_at, end_at
        self.results: list[dict] = []

    def post(self, conn: http.client.HTTPConnection, number: int) -> dict:
        external_id = f"{self.tag}-s{self.index:02d}-{number:05d}"
        png = tagged_png(self.pool[(self.index * 7 + number) % len(self.pool)], external_id)
        boundary = uuid.uuid4().hex
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="external_id"\r\n\r\n'
            f"{external_id}\r\n"
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="image"; filename="{external_id}.png"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        body = head + png + f"\r\n--{boundary}--\r\n".encode()
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
        }
        wall_start, started = time.time(), time.perf_counter()
        conn.request("POST", "/api/v1/inspections/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        ended, wall_end = time.perf_counter(), time.time()
        result = {
            "start": started,
            "end": ended,
            "wall_start": wall_start,
            "wall_end": wall_end,
            "external_id": external_id,
            "station": self.index,
            "status": response.status,
            "error": None,
        }
        try:
            answer = json.loads(payload)
        except ValueError:
            answer = {}
        if response.status != 201:
            result["error"] = f"HTTP {response.status}: {payload[:200]!r}"
        elif (
            answer.get("decision") not in ("accept", "reject")
            or answer.get("decided_by") != "model"
        ):
            result["error"] = (
                f"decision {answer.get('decision')!r} by {answer.get('decided_by')!r}, "
                f"fail_safe_reason {answer.get('fail_safe_reason')!r}"
            )
        result["model_ms"] = answer.get("latency_ms")
        return result

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        while time.perf_counter() < self.start_at:
            time.sleep(0.001)
        number = 0
        while time.perf_counter() < self.end_at:
            try:
                self.results.append(self.post(conn, number))
            except (OSError, http.client.HTTPException) as exc:
                now = time.perf_counter()
                self.results.append(
                    {"start": now, "end": now, "status": None, "error": repr(exc), "model_ms": None}
                )
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            number += 1
        conn.close()


def drive(tokens, port, pool, stations: int, tag: str, seconds: float) -> list[dict]:
    start_at = time.perf_counter() + 0.05
    threads = [
        Station(i, tokens[i], port, pool, tag, start_at, start_at + seconds)
        for i in range(stations)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [r | {"t0": start_at} for thread in threads for r in thread.results]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = q / 100 * (len(ordered) - 1)
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize(results: list[dict], stations: int, ceiling: float, cpu: dict) -> dict:
    ok = [r for r in results if r["error"] is None]
    errors = [r["error"] for r in results if r["error"] is not None]
    t0 = results[0]["t0"] if results else 0.0
    span = max((r["end"] for r in results), default=t0) - t0
    latencies = [(r["end"] - r["start"]) * 1000 for r in ok]
    model_ms = [r["model_ms"] for r in ok if r["model_ms"] is not None]
    throughput = len(ok) / span if span > 0 else 0.0
    per_request = {k: v * 1000 / max(len(results), 1) for k, v in cpu.items()}
    return {
        "stations": stations,
        "requests": len(results),
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": sorted(set(errors))[:5],
        "seconds": span,
        "requests_per_s": throughput,
        "fraction_of_ceiling": throughput / ceiling,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "worker_model_ms_p50": statistics.median(model_ms) if model_ms else None,
        "cpu_ms_per_request": {
            "web": per_request["web"],
            "worker": per_request["worker"],
            "client": per_request["client"],
            # PostgreSQL, Redis, the kernel and anything else on the machine
            "rest": per_request["machine"]
            - per_request["web"]
            - per_request["worker"]
            - per_request["client"],
        },
        "cpu_cores_busy": cpu["machine"] / span if span > 0 else 0.0,
    }


PHASES = ("receive", "to_worker", "model", "route", "answer")


def latency_breakdown(results: list[dict]) -> dict:
    """Where a request's time goes: the client's wall clock against the rows' timestamps.

    receive: HTTP, parsing, auth, validation and the stored file, up to received_at;
    to_worker: commit, enqueue, broker, worker pickup and its queries, up to the model's start;
    model: decode + predict as the worker timed it; route: recording the prediction and the
    routing, up to routed_at; answer: result backend, waking the web thread, the answer's
    queries and the response. Means, so the phases add up to the mean latency.
    """
    from inspection.models import Inspection

    ok = {r["external_id"]: r for r in results if r["error"] is None}
    rows = Inspection.objects.filter(external_id__in=list(ok)).values_list(
        "external_id", "received_at", "routed_at", "predictions__created_at",
        "predictions__latency_ms",
    )  # fmt: skip
    sums = dict.fromkeys(PHASES, 0.0)
    count = 0
    for external_id, received, routed, predicted, model_ms in rows:
        if routed is None or predicted is None:
            continue
        r = ok[external_id]
        model_start = predicted.timestamp() - model_ms / 1000
        sums["receive"] += (received.timestamp() - r["wall_start"]) * 1000
        sums["to_worker"] += (model_start - received.timestamp()) * 1000
        sums["model"] += model_ms
        sums["route"] += (routed.timestamp() - predicted.timestamp()) * 1000
        sums["answer"] += (r["wall_end"] - routed.timestamp()) * 1000
        count += 1
    return {phase: total / count for phase, total in sums.items()} if count else {}


def measure_end_to_end(world: dict, pool: list[bytes], ceiling: float, seconds: float) -> dict:
    port = free_port()
    worker = Service(
        "celery-worker",
        [
            sys.executable, "-m", "celery", "-A", "loupe", "worker", "-Q", QUEUE,
            "--pool=prefork", "--concurrency=2", "-l", "warning", "-n", "bench@%h",
            # nothing to gossip or mingle with: one worker, its own Redis db
            "--without-gossip", "--without-mingle",
        ],
    )  # fmt: skip
    web = Service(
        "gunicorn",
        [
            sys.executable, "-m", "gunicorn", "loupe.wsgi", "-k", "gthread", "--threads", "16",
            "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning",
        ],
    )  # fmt: skip
    services = [worker, web]
    try:
        wait_until("gunicorn", lambda: http_ok(port, "/api/schema/"), services)
        wait_until("celery worker", worker_answers_ping, services)
        log(f"services up (gunicorn :{port}, worker pid {worker.process.pid})")
        from django.db import connections

        connections.close_all()  # the bench process holds no database connection while measuring
        tokens = world["tokens"]
        # two stations at once, so both worker processes load the model before the clock runs
        warm = drive(tokens, port, pool, 2, "warm", 3.0)
        warm_errors = [r["error"] for r in warm if r["error"]]
        if warm_errors:
            raise RuntimeError(f"warm-up failed: {warm_errors[:3]}")
        noop = celery_round_trip()
        log(f"celery no-op round trip p50 {noop['p50_ms']:.1f} ms")
        levels = []
        watch = LoadWatch("end to end")
        for stations in CONCURRENCY:
            for service in services:
                service.check_alive()
            sessions = pg_sessions()
            before = cpu_snapshot(web, worker)
            results = drive(tokens, port, pool, stations, f"c{stations}", seconds)
            after = cpu_snapshot(web, worker)
            # closed sessions report their stats as they end: let the last ones land
            time.sleep(0.5)
            sessions = pg_sessions() - sessions
            cpu = {k: after[k] - before[k] for k in before}
            level = summarize(results, stations, ceiling, cpu)
            level["db_sessions_per_request"] = sessions / max(len(results), 1)
            level["breakdown_ms"] = latency_breakdown(results)
            levels.append(level)
            log(
                f"  {stations:>2} stations: {level['requests_per_s']:6.1f} req/s, "
                f"p50 {level['p50_ms']:6.1f} ms, p99 {level['p99_ms']:6.1f} ms, "
                f"{level['errors']} errors"
            )
        return {
            "levels": levels,
            "warm_requests": len(warm),
            "celery_noop": noop,
            "load": watch.result(),
        }
    finally:
        for service in services:
            service.stop()


# Report -----------------------------------------------------------------------------------


def report(results: dict) -> str:
    c, e2e, msg = results["ceiling"], results["end_to_end"]["levels"], results["celery_message"]
    raw = c["raw_per_image_ms"]
    split = results["model_split"]
    lines = [
        "",
        f"Machine: {results['machine']['cpus']} CPUs, {results['machine']['cpu_model']}; "
        f"torch {results['machine']['torch']}; image: {results['image']['size']} PNG, "
        f"{results['image']['bytes_mean']:.0f} bytes on average",
        "",
        "Ceiling (decode PNG bytes + DefectModel.predict, in process)",
        f"  {'layout':<22}{'batch':>6}{'images/s':>11}{'ms/call p50':>13}",
    ]
    for cfg in c["configs"]:
        layout = f"{cfg['processes']} proc x {cfg['threads']} thread(s)"
        lines.append(
            f"  {layout:<22}{cfg['batch']:>6}{cfg['images_per_s']:>11.1f}"
            f"{cfg['call_ms_p50']:>13.2f}"
        )
    best = c["best"]
    lines += [
        f"  ceiling: {c['images_per_s']:.1f} images/s ({best['processes']} proc x "
        f"{best['threads']} thread(s), batch {best['batch']})",
        f"  raw per-image time, batch 1, 1 process x 1 thread: {raw:.2f} ms "
        f"({c['raw_1x1_images_per_s']:.1f} images/s)",
        f"  of which (means, 1 thread): decode {split['decode_ms_mean']:.2f} ms, preprocess "
        f"{split['preprocess_ms_mean']:.2f} ms, network {split['network_ms_mean']:.2f} ms, "
        f"extract_regions {split['regions_ms_mean']:.2f} ms "
        f"({split['flagged']}/{split['images']} images flagged defective)",
        "",
        f"Celery message for one inspection: {msg['message_bytes']} bytes on the wire "
        f"(body {msg['body_bytes']} bytes: task {msg['task']}, args {msg['args']}); "
        f"{'only the inspection id' if msg['id_only'] else 'MORE THAN THE ID'}; "
        f"the image itself is {msg['image_bytes']} bytes",
        f"Web-side per image, in process: validate_image (full decode + sha256) "
        f"{results['web_side']['validate_image_ms_p50']:.2f} ms, store_image (write + fsync) "
        f"{results['web_side']['store_image_ms_p50']:.2f} ms",
        f"Worker task body, in process without Celery (predict_and_route): "
        f"{results['task_body']['total_ms_p50']:.2f} ms, of which the model "
        f"{results['task_body']['model_ms_p50']:.2f} ms and the queries "
        f"{results['task_body']['rest_ms_p50']:.2f} ms; opening a new database connection "
        f"first, as Celery's Django fixup does around every task: "
        f"{results['task_body']['with_new_db_connection_ms_p50']:.2f} ms",
        f"Celery alone, a no-op task round trip (publish, worker, result): "
        f"{results['end_to_end']['celery_noop']['p50_ms']:.2f} ms p50",
        "",
        "End to end (HTTP -> gunicorn gthread x16 -> Django -> Redis -> Celery prefork "
        "2 x 1 thread -> answer)",
        f"  {'stations':>8}{'req/s':>8}{'of ceiling':>12}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'model ms':>10}{'errors':>8}{'DB conn/req':>13}   CPU ms/request "
        "web/worker/client/rest",
    ]
    for lv in e2e:
        cpu = lv["cpu_ms_per_request"]
        lines.append(
            f"  {lv['stations']:>8}{lv['requests_per_s']:>8.1f}{lv['fraction_of_ceiling']:>11.1%} "
            f"{lv['p50_ms']:>8.1f}{lv['p99_ms']:>9.1f}{lv['worker_model_ms_p50'] or 0:>10.2f}"
            f"{lv['errors']:>8}{lv['db_sessions_per_request']:>13.2f}   "
            f"{cpu['web']:.1f} / {cpu['worker']:.1f} / {cpu['client']:.1f}"
            f" / {cpu['rest']:.1f}"
        )
        for sample in lv["error_samples"]:
            lines.append(f"           error: {sample}")
    lines += [
        "",
        "  Where the time goes (mean ms per request; see latency_breakdown):",
        f"  {'stations':>8}" + "".join(f"{phase:>11}" for phase in PHASES) + f"{'total':>9}",
    ]
    for lv in e2e:
        parts = lv["breakdown_ms"]
        lines.append(
            f"  {lv['stations']:>8}"
            + "".join(f"{parts.get(phase, float('nan')):>11.1f}" for phase in PHASES)
            + f"{sum(parts.values()):>9.1f}"
        )
    one = e2e[0]
    lines += [
        f"  latency added at 1 station: p50 {one['p50_ms']:.1f} ms - raw {raw:.2f} ms = "
        f"{results['added_latency_ms_at_1_station']:.1f} ms",
        "",
        "Markdown:",
        "",
        f"Ceiling: **{c['images_per_s']:.1f} images/s** ({best['processes']} process x "
        f"{best['threads']} thread(s), batch {best['batch']}); raw per-image time (batch 1, "
        f"1 thread): **{raw:.2f} ms**.",
        "",
        "| stations | requests/s | of ceiling | p50 ms | p99 ms | errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in e2e:
        lines.append(
            f"| {lv['stations']} | {lv['requests_per_s']:.1f} | {lv['fraction_of_ceiling']:.1%} "
            f"| {lv['p50_ms']:.1f} | {lv['p99_ms']:.1f} | {lv['errors']} |"
        )
    lines += [
        "",
        f"Latency added over the raw per-image time at 1 station (p50 - raw): "
        f"**{results['added_latency_ms_at_1_station']:.1f} ms**.",
        "",
    ]
    for load in results["load"]:
        line = (
            f"Other load during the {load['window']} ({load['seconds']:.0f} s): "
            f"{load['other_cores']:.2f} cores"
        )
        if load["processes"] or load["other_cores"] > DISTURBED_CORES:
            line = "WARNING: " + line + "; these timings are disturbed"
        lines.append(line)
        lines += [f"  {p}" for p in load["processes"]]
    return "\n".join(lines)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per concurrency level")
    parser.add_argument("--ceiling-seconds", type=float, default=3.0, help="per ceiling config")
    parser.add_argument("--ceiling-warmup", type=float, default=1.0)
    args = parser.parse_args()

    os.environ.update(bench_env())
    began = time.perf_counter()
    log(f"resetting database {DB_NAME}, {REDIS_URL} and {BENCH_DIR}")
    reset_state()
    log("migrating, generating 96 images, training a one-epoch model")
    world = setup_django_world()
    log(f"model trained and registered in {world['train_s']:.1f}s")
    pool = image_pool()

    import torch

    results: dict = {
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "image": {
            "size": "128x128",
            "pool": len(pool),
            "bytes_mean": statistics.mean(len(p) for p in pool),
        },
    }
    results["web_side"] = web_side_costs(pool)
    results["celery_message"] = celery_message_probe(world["stations"][0][0], pool)
    results["task_body"] = task_body_cost(world["stations"][1][0], pool)

    results["model_split"] = model_split(world["artifact"], pool)
    log("ceiling: decode + predict in a tight loop")
    watch = LoadWatch("ceiling")
    results["ceiling"] = measure_ceiling(
        world["artifact"], pool, warm_s=args.ceiling_warmup, measure_s=args.ceiling_seconds
    )
    results["load"] = [watch.result()]
    ceiling = results["ceiling"]["images_per_s"]

    log("end to end: gunicorn + celery worker, 1..16 stations")
    results["end_to_end"] = measure_end_to_end(world, pool, ceiling, args.seconds)
    results["load"].append(results["end_to_end"].pop("load"))
    results["added_latency_ms_at_1_station"] = (
        results["end_to_end"]["levels"][0]["p50_ms"] - results["ceiling"]["raw_per_image_ms"]
    )
    results["total_seconds"] = time.perf_counter() - began

    text = report(results)
    print(text)
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    log(f"done in {results['total_seconds']:.0f}s; figures in {BENCH_DIR / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
