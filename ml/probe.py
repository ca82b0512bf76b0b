"""Load an artifact in a fresh process and measure what serving it costs.

    python -m ml.probe ARTIFACT --sha256 HASH --image PART.png [--runs 20] [--threads 1]

prints one JSON object: load time, per-image latency (median and 95th percentile, batch of
one, after a warm-up), and the process's peak resident memory, torch included, since that is
what a worker process that serves the model needs. It imports no Django, so the process
is as bare as an inference worker's model; the pipeline's infrastructure step runs it.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import torch
from PIL import Image

from ml.engine.artifact import load_artifact


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ml.probe")
    parser.add_argument("artifact")
    parser.add_argument("--sha256", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = load_artifact(args.artifact, expected_sha256=args.sha256)
    load_s = time.perf_counter() - started
    with Image.open(args.image) as image:
        image = image.convert("RGB")
    model.predict([image])  # the first call allocates; a worker pays it once
    times = []
    for _ in range(max(args.runs, 1)):
        started = time.perf_counter()
        model.predict([image])
        times.append((time.perf_counter() - started) * 1000.0)
    times.sort()
    # ru_maxrss is in kilobytes on Linux
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                "load_s": round(load_s, 4),
                "latency_ms_p50": round(times[len(times) // 2], 3),
                "latency_ms_p95": round(times[min(len(times) - 1, int(0.95 * len(times)))], 3),
                "peak_memory_mb": round(peak_mb, 1),
                "runs": len(times),
                "threads": args.threads,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
