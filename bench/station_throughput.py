"""Station throughput: the model's ceiling against the full API path, on the same cores.

One run, self-contained and repeatable (see bench/README.md):

1. setup: its own PostgreSQL database (loupe_bench), Redis db 13 and files under var/bench/;
   migrate, train a model (8 epochs on 400 generated images), a "full" line with a 60 s budget
   (no fail-safe can fire) and no audit, 16 stations;
2. ceiling: a tight loop that decodes the posted PNG bytes and runs DefectModel.predict, for
   batch 1/8/32 at 1 process x 2 torch threads and 2 processes x 1 thread; the best is the
   ceiling. The raw per-image time is batch 1, one process, one thread;
3. the Celery message the API sends, read back from Redis with no worker running;
4. end to end: gunicorn (gthread) + a prefork Celery worker (2 processes x 1 torch thread) and
   1..16 station threads posting images back to back over keep-alive HTTP;
5. the peer (issue 13): a naive Flask server that decodes each image and predicts inline,
   nothing stored (gunicorn sync workers = cores, 1 torch thread), under the same stations.

Run with `make bench` (or `.venv/bin/python bench/station_throughput.py`). Figures are printed
and written to var/bench/results.json. This file is the entry point; the parts are in
bench/station/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

from station.ceiling import measure_ceiling, model_split
from station.config import BENCH_DIR, DB_NAME, REDIS_URL, bench_env, log
from station.cpu import LoadWatch, cpu_model
from station.end_to_end import measure_end_to_end
from station.images import image_pool
from station.peer import measure_peer
from station.probes import celery_message_probe, task_body_cost, web_side_costs
from station.report import report
from station.world import reset_state, setup_django_world


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
    log("migrating, generating 400 images, training a model (8 epochs)")
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
    log("peer: the naive Flask server, the same model and images, 1..16 stations")
    results["peer"] = measure_peer(world["artifact"], pool, args.seconds)
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
