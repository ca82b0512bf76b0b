"""What the Prometheus figures cost: per station item, and per scrape.

Per item, the calls the station path makes, in prometheus_client's multiprocess mode (files
under a temporary folder, as in production):
    web     record_answer (requests, fail-safe, receive histogram) + record_request_seconds
    worker  record_queue_wait + record_inference (model histogram, empty-output check)
            + record_task (busy time, task count), as the Celery signals make them
Per scrape: merging the files of N processes holding the series of L lines x S stations.

    .venv/bin/python bench/metrics_overhead.py            # a few seconds, no service needed
    .venv/bin/python bench/metrics_overhead.py --items 50000 --processes 8

It prints microseconds per item (median of 5 rounds) and milliseconds per scrape; nothing is
asserted. Compare with a line's latency budget (typically 200 to 2000 ms per item).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_item_us(items: int) -> dict[str, float]:
    from loupe.common import metrics

    def web(i: int) -> None:
        metrics.record_answer(
            line="line-1", station=f"cam-{i % 10}", model_version="v7", outcome="accept",
            decided_by="model", fail_safe_reason="", created=True, received_s=0.004,
        )  # fmt: skip
        metrics.record_request_seconds(
            line="line-1", station=f"cam-{i % 10}", model_version="v7", seconds=0.05
        )

    def worker(i: int) -> None:
        token = metrics.current_station.set(("line-1", f"cam-{i % 10}"))
        metrics.record_queue_wait(line="line-1", station=f"cam-{i % 10}", sent_at=time.time())
        metrics.record_inference(
            model_version="v7", seconds=0.02, probability=0.1, region_count=0, threshold=0.5
        )
        metrics.current_station.reset(token)
        metrics.record_task(queue="inference", task="inspection.predict", seconds=0.03,
                            state="success")  # fmt: skip

    figures = {}
    for name, step in (("web", web), ("worker", worker)):
        rounds = []
        for _ in range(5):
            started = time.perf_counter()
            for i in range(items):
                step(i)
            rounds.append((time.perf_counter() - started) / items * 1e6)
        figures[name] = statistics.median(rounds)
    return figures


CHILD = """
import sys
from loupe.common import metrics
lines, stations = int(sys.argv[1]), int(sys.argv[2])
for l in range(lines):
    for s in range(stations):
        metrics.record_answer(line=f"line-{l}", station=f"cam-{s}", model_version="v7",
            outcome="accept", decided_by="model", fail_safe_reason="", created=True,
            received_s=0.004)
        metrics.record_request_seconds(line=f"line-{l}", station=f"cam-{s}", model_version="v7",
            seconds=0.05)
        metrics.record_queue_wait(line=f"line-{l}", station=f"cam-{s}", sent_at=0)
"""


def scrape_ms(root: Path, processes: int, lines: int, stations: int) -> tuple[float, int]:
    """Fill the folder as `processes` processes would, then time merging it into text."""
    env = {**os.environ, "LOUPE_METRICS_DIR": str(root)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for _ in range(processes):
        subprocess.run(
            [sys.executable, "-c", CHILD, str(lines), str(stations)],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
    from prometheus_client import CollectorRegistry, generate_latest

    from loupe.metrics_view import ProcessFiles

    rounds, size = [], 0
    for _ in range(5):
        registry = CollectorRegistry()
        registry.register(ProcessFiles(root))
        started = time.perf_counter()
        size = len(generate_latest(registry))
        rounds.append((time.perf_counter() - started) * 1000)
    return statistics.median(rounds), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--lines", type=int, default=10)
    parser.add_argument("--stations", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="loupe-metrics-bench-") as folder:
        root = Path(folder)
        os.environ["LOUPE_METRICS_DIR"] = str(root)
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loupe.settings")
        figures = per_item_us(args.items)
        print(f"per item, {args.items} items x 5 rounds (median), multiprocess files:")
        print(f"  web process (answer, fail-safe, receive, total):   {figures['web']:6.1f} us")
        print(f"  worker process (queue, model, empty, busy, task):  {figures['worker']:6.1f} us")
        print(f"  together:                                          "
              f"{figures['web'] + figures['worker']:6.1f} us per item")  # fmt: skip
        scrape_root = root / "scrape"
        ms, size = scrape_ms(scrape_root, args.processes, args.lines, args.stations)
        print(
            f"per scrape: {args.processes} processes x {args.lines} lines x {args.stations} "
            f"stations merged in {ms:.1f} ms ({size / 1024:.0f} KiB of text; database figures "
            "not included)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
