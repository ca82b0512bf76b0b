"""The ceiling: the model alone (decode + DefectModel.predict) in a tight loop, in separate
processes, and the split of the raw per-image time."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
from pathlib import Path

from .config import CEILING_BATCHES, CEILING_LAYOUTS, log
from .images import decode


def _ceiling_process(conn, artifact: str, pool: list[bytes]) -> None:
    """Loads the artifact once, then runs (batch, threads, window) jobs sent by the parent.

    The parent gives every process the same absolute window (time.time()), so the processes
    of one layout warm up together and are measured over the same seconds.
    """
    import torch

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
                images.append(decode(pool[i % len(pool)]))
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

    from ml.engine.artifact import load_artifact

    torch.set_num_threads(1)
    model = load_artifact(Path(artifact))
    parts: dict[str, list[float]] = {"decode": [], "preprocess": [], "network": [], "regions": []}
    flagged = 0
    for n in range(rounds * len(pool)):
        t0 = time.perf_counter()
        image = decode(pool[n % len(pool)])
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
