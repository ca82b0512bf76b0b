"""Mirror overhead: does a mirror challenger slow the station's answer? (issue 12, point 1:
1-station p50 within +10% with and without one).

One run, self-contained and repeatable (see bench/README.md):

1. setup as bench/batch_interference.py's (its own PostgreSQL database, Redis db and files;
   a one-epoch model on 96 generated images, a "full" line, no audit), named apart here
   (loupe_mirror_bench, Redis db 12); a byte-different copy of the model registered as the
   line's candidate;
2. services as production runs them: gunicorn, an inference worker (-Q inference, 2
   processes) and a challenger worker (-Q challenger, 1 process), each at
   LOUPE_TORCH_THREADS=1;
3. one station posting images back to back in rounds of `--round-seconds`, alternating a mirror
   rollout of the copy running (every answered item also goes to the challenger's queue and is
   predicted there) and no rollout, `--rounds` of each: interleaved rounds meet the same drift
   in the rest of the machine's load;
4. figures: the station's p50 / p99 with and without the mirror, the rise of the p50, and how
   many items the challenger predicted while it ran.

Prints JSON and writes var/bench-batch/mirror-results.json. Exit status 1 when the p50 rose by
more than 10% or a request failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("BENCH_DB_NAME", "loupe_mirror_bench")
os.environ.setdefault("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_interference import (  # noqa: E402
    BENCH_DIR,
    LOGS,
    bench_env,
    log,
    setup,
    wait_for,
    window,
    worker,
)
from station.images import image_pool  # noqa: E402
from station.load import drive  # noqa: E402
from station.processes import Service, free_port, http_ok  # noqa: E402

MAX_P50_RISE = 0.10


def register_copy(line):
    """The active model's artifact again, one byte longer (another hash; torch ignores bytes
    after the archive), registered as the line's candidate."""
    from ml.services import register_model_version

    active = line.active_model
    target = active.artifact_file.with_name("mirror-copy.pt")
    shutil.copy(active.artifact_file, target)
    with open(target, "ab") as handle:
        handle.write(b"\0")
    return register_model_version(artifact=target, name="mirror-copy", line=line)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds with and without")
    parser.add_argument("--round-seconds", type=float, default=8.0)
    args = parser.parse_args()

    os.environ.update(bench_env())
    log("resetting the bench's database, Redis db and files; training a one-epoch model")
    world = setup()
    line = world["line"]
    copy = register_copy(line)
    pool = image_pool()
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "loupe.wsgi", "-k", "gthread"]
    gunicorn += ["--threads", "8", "-w", "1", "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    services = [worker("inference", "inference", 2), worker("challenger", "challenger", 1)]
    services.append(Service("gunicorn", gunicorn, LOGS))
    from django.db import connections

    from inspection import rollouts
    from inspection.models import Prediction
    from ml import challengers

    with_mirror, without, mirrored = [], [], 0
    try:
        wait_for("gunicorn", lambda: http_ok(port, "/login/"), services)
        for service in services[:2]:
            wait_for(service.name, lambda s=service: "ready." in s.log_path.read_text(), services)
        connections.close_all()
        warm = drive(world["tokens"], port, pool, 2, "warm", 5.0)
        log(f"warm-up: {len(warm)} requests")
        for number in range(2 * args.rounds):
            if number % 2 == 0:
                rollout = challengers.start_challenger(
                    model_version=copy, mode="mirror", changed_by="bench"
                )
                connections.close_all()
                time.sleep(1.0)  # every process heard of it and loaded the copy
                with_mirror += drive(
                    [world["token"]], port, pool, 1, f"m{number}", args.round_seconds
                )
                rollouts.end_rollout(rollout=rollout, state="stopped", changed_by="bench")
                time.sleep(1.0)  # the challenger's queue drains before the next round
                mirrored += Prediction.objects.filter(
                    inspection__rollout=rollout, role="challenger"
                ).count()
            else:
                connections.close_all()
                without += drive([world["token"]], port, pool, 1, f"n{number}", args.round_seconds)
    finally:
        for service in services:
            service.stop()
    windows = [window("with a mirror challenger", with_mirror), window("without", without)]
    rise = windows[0]["p50_ms"] / windows[1]["p50_ms"] - 1
    results = {
        "cpus": os.cpu_count(),
        "rounds": args.rounds,
        "round_seconds": args.round_seconds,
        "windows": windows,
        "p50_rise": rise,
        "mirrored_predictions": mirrored,
        "holds": rise <= MAX_P50_RISE and windows[0]["errors"] == windows[1]["errors"] == 0,
    }
    text = json.dumps(results, indent=2)
    (BENCH_DIR / "mirror-results.json").write_text(text)
    print(text)
    return 0 if results["holds"] else 1


if __name__ == "__main__":
    sys.exit(main())
