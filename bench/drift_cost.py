"""What data-drift monitoring costs: per served image, and per window check.

Per image, on the model's input (resized to its input size, so the statistics cost the same
whatever the camera's resolution) and, apart, what grows with the camera: decoding the file
and the resize. Two cameras: 128 px (the generator's) and 2448x2048 (5 MP, PNG and JPEG).
    statistics_us       ml.engine.drift.batch_statistics of one input (brightness, contrast,
                        sharpness, colour balance)
    projection_us       the embedding cut to 16 floats
    record_us           all the drift record's own work beside the network's pass
                        (statistics, projection, schema and skew): what the station path adds
    overhead_us         predict_with_statistics - model.predict on the same decoded image,
                        interleaved rounds (noisy: a difference of two medians)
    decode_ms, resize_ms, predict_ms   for scale
Per window: ml.engine.drift.compare of `--window` items against a reference of `--reference`
images at 9 training gains; and building that reference once per model version.

    .venv/bin/python bench/drift_cost.py                  # ~1 minute on 2 cores, no service
    .venv/bin/python bench/drift_cost.py --artifact path/to/model.pt

It prints one JSON object: medians over `--rounds`; nothing is asserted.

Measured 2026-12-01 on the 2-core development machine (shared), one torch thread: the drift
record's own work 0.14 ms per image (statistics 0.13 ms, projection 0.001 ms) at 128 px and at
2448x2048 alike, against a 128 px model input; the prediction with it 3.6 ms instead of 3.4 at
128 px. What grows with the camera is the decode (2448x2048: PNG 88 ms, JPEG 16 ms) and the
resize (16 ms), paid before, with or without drift. A window check of 200 items against 500
reference images at 9 gains: 43 ms; building that reference once per model version: 6.2 s
(1.7 MB of JSON).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def median_s(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def load_model(artifact: str | None, workdir: Path):
    from ml.engine.artifact import load_artifact
    from ml.engine.generator import generate_dataset
    from ml.engine.train import TrainConfig, train_model

    if artifact is None:
        generate_dataset(workdir / "data", count=48, seed=3)
        artifact = train_model(
            workdir / "data", workdir / "m.pt", config=TrainConfig(epochs=1)
        ).artifact_path
    return load_artifact(Path(artifact))


def camera_images(size: tuple[int, int], seed: int):
    """A generated surface at 128 px, scaled up to the camera's size (texture is not the point:
    the decode and the resize depend on the pixel count and the format)."""
    import numpy as np
    from PIL import Image

    from ml.engine.generator import SurfaceConfig, render_surface

    image = render_surface(np.random.default_rng(seed), SurfaceConfig())[0]
    return image if image.size == size else image.resize(size, Image.Resampling.BILINEAR)


def per_image(model, size: tuple[int, int], fmt: str, rounds: int) -> dict:
    import numpy as np
    from PIL import Image

    from ml.engine import drift

    image = camera_images(size, 1)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    data = buffer.getvalue()

    def decode():
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return opened.copy()

    decoded = decode()
    pixels = model.preprocessing.resize(decoded)
    pooled = np.random.default_rng(0).standard_normal((1, model.embedding_size)).astype("f4")
    statistics_s = median_s(lambda: drift.batch_statistics(pixels[None]), rounds * 20)
    projection_s = median_s(lambda: drift.project(pooled), rounds * 20)
    # interleaved, each first in turn: a neighbour's load on a shared machine, and whichever
    # runs second finding memory warm (5 MP images), hit both alike
    plain, recorded = [], []
    for n in range(2 * rounds):
        runs = [
            (plain, lambda: model.predict([decoded])),
            (recorded, lambda: drift.predict_with_statistics(model, [decoded])),
        ]
        for times, fn in runs if n % 2 else reversed(runs):
            times.append(median_s(fn, 1))
    predict_s, with_stats_s = statistics.median(plain), statistics.median(recorded)
    record_s = median_s(lambda: _record_only(model, pixels, decoded), rounds * 20)
    return {
        "camera": f"{size[0]}x{size[1]} {fmt}",
        "file_kb": round(len(data) / 1024),
        "model_input": f"{pixels.shape[1]}x{pixels.shape[0]}",
        "statistics_us": round(statistics_s * 1e6, 1),
        "projection_us": round(projection_s * 1e6, 1),
        "record_us": round(record_s * 1e6, 1),
        "overhead_us": round((with_stats_s - predict_s) * 1e6, 1),
        "decode_ms": round(median_s(decode, rounds) * 1e3, 2),
        "resize_ms": round(median_s(lambda: model.preprocessing.resize(decoded), rounds) * 1e3, 2),
        "predict_ms": round(predict_s * 1e3, 2),
        "predict_with_statistics_ms": round(with_stats_s * 1e3, 2),
    }


def _record_only(model, pixels, image) -> dict:
    """The drift record's own work beside the model's pass: statistics, projection, schema."""
    from ml.engine import drift

    figures = drift.batch_statistics(pixels[None])
    record = {name: round(float(figures[name][0]), 6) for name in drift.STATISTICS}
    pooled = _record_only.pooled = getattr(_record_only, "pooled", None)
    if pooled is None:
        import numpy as np

        pooled = _record_only.pooled = np.zeros((1, model.embedding_size), "f4")
    record["embedding"] = [round(float(v), 5) for v in drift.project(pooled)[0]]
    record["schema"] = schema = drift.image_schema(image)
    record["skew"] = drift.schema_skew(schema, model.hyperparameters.get("input_schema"))
    return record


def window_check(model, reference_items: int, window_items: int, rounds: int) -> dict:
    import numpy as np

    from ml.engine import drift
    from ml.engine.generator import SurfaceConfig, render_surface

    def render(seed: int, n: int, **knobs):
        config = SurfaceConfig(**knobs)
        return [render_surface(np.random.default_rng([seed, i]), config)[0] for i in range(n)]

    references = render(1, reference_items)
    started = time.perf_counter()
    reference = drift.build_reference(
        model, references, jitter=float(model.hyperparameters.get("augmentation", 0.25))
    )
    build_s = time.perf_counter() - started
    results = drift.predict_with_statistics(model, render(2, window_items))
    window = drift.Window.from_records(
        [r for _, r in results], [o.defect_probability for o, _ in results]
    )
    policy = drift.DriftPolicy()
    check_s = median_s(
        lambda: drift.compare(reference, window, reject_threshold=0.8, policy=policy), rounds
    )
    stored = len(json.dumps(reference.to_dict()))
    return {
        "reference_items": reference.size,
        "gains": len(reference.gains),
        "window_items": window.size,
        "build_reference_s": round(build_s, 2),
        "reference_json_kb": round(stored / 1024),
        "check_ms": round(check_s * 1e3, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", help="a model artifact (default: train a tiny one)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reference", type=int, default=500)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as workdir:
        model = load_model(args.artifact, Path(workdir))
        figures = {
            "torch_threads": args.threads,
            "per_image": [
                per_image(model, (128, 128), "PNG", args.rounds),
                per_image(model, (2448, 2048), "PNG", max(3, args.rounds // 3)),
                per_image(model, (2448, 2048), "JPEG", max(3, args.rounds // 3)),
            ],
            "window": window_check(model, args.reference, args.window, max(3, args.rounds // 3)),
        }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
