"""End to end: gunicorn + a prefork Celery worker under 1..16 stations, summarized per level."""

from __future__ import annotations

import statistics
import sys
import time

from .config import CONCURRENCY, QUEUE, log
from .cpu import LoadWatch, cpu_snapshot, pg_sessions, session_memory_mb
from .load import drive
from .probes import celery_round_trip
from .processes import Service, free_port, http_ok, wait_until, worker_answers_ping


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
        wait_until("gunicorn", lambda: http_ok(port, "/login/"), services)
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
            # every process of each service (gunicorn's arbiter and worker; celery's main
            # process and its pool), after the run
            "memory_mb": {
                "web": session_memory_mb(web.process.pid),
                "worker": session_memory_mb(worker.process.pid),
            },
            "warm_requests": len(warm),
            "celery_noop": noop,
            "load": watch.result(),
        }
    finally:
        for service in services:
            service.stop()
