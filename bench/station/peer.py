"""The peer column: the naive server of peer_app.py under gunicorn, driven by the same station
threads, images and model artifact as Loupe's end-to-end levels."""

from __future__ import annotations

import os
import sys

from .config import CONCURRENCY, ROOT, log
from .cpu import session_memory_mb
from .end_to_end import percentile
from .load import drive
from .processes import Service, free_port, wait_until


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def measure_peer(artifact: str, pool: list[bytes], seconds: float) -> dict:
    """Requests/s and latency of the peer at each of CONCURRENCY's station counts."""
    port = free_port()
    os.environ["PEER_ARTIFACT"] = artifact
    server = Service(
        "peer",
        [
            sys.executable, "-m", "gunicorn", "station.peer_app:app", "-k", "sync",
            "-w", str(os.cpu_count() or 1), "-b", f"127.0.0.1:{port}",
            "--pythonpath", f"{ROOT},{ROOT / 'bench'}", "--log-level", "warning",
        ],
    )  # fmt: skip
    try:
        wait_until("the peer", lambda: _listening(port), [server])
        drive(None, port, pool, 2, "peer-warm", 2.0, peer=True)
        levels = []
        for stations in CONCURRENCY:
            server.check_alive()
            results = drive(None, port, pool, stations, f"peer{stations}", seconds, peer=True)
            ok = [r for r in results if r["error"] is None]
            t0 = results[0]["t0"] if results else 0.0
            span = max((r["end"] for r in results), default=t0) - t0
            latencies = [(r["end"] - r["start"]) * 1000 for r in ok]
            level = {
                "stations": stations,
                "requests": len(results),
                "errors": len(results) - len(ok),
                "error_samples": sorted({r["error"] for r in results if r["error"]})[:5],
                "requests_per_s": len(ok) / span if span > 0 else 0.0,
                "p50_ms": percentile(latencies, 50),
                "p99_ms": percentile(latencies, 99),
            }
            levels.append(level)
            log(
                f"  peer, {stations:>2} stations: {level['requests_per_s']:6.1f} req/s, "
                f"p50 {level['p50_ms']:6.1f} ms, p99 {level['p99_ms']:6.1f} ms, "
                f"{level['errors']} errors"
            )
        return {"levels": levels, "memory_mb": session_memory_mb(server.process.pid)}
    finally:
        server.stop()
