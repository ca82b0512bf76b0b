"""How the drift checks behave on a stream of a station's items, as monitoring.drift runs them:
the last `--window` items tested once every `--step` new ones, against a reference of
`--reference` training images.

    unshifted      `--items` items of the training camera per seed: every alarm is false
    lighting_0.9   a shift inside the training augmentation (gain 1 +- 0.25): must not alarm
    shifted        lighting 0.6 and blur 1.5, outside it: items from the shift to the first alarm

The model is trained here (400 generated images, 6 epochs: about 30 s on 2 cores) unless
`--artifact` names one. Engine only: no database, no service.

    .venv/bin/python bench/drift_stream.py                # about 8 minutes on 2 cores
    .venv/bin/python bench/drift_stream.py --items 500 --seeds 1

It prints one JSON object per scenario and seed, then a summary; nothing is asserted.

Measured 2026-12-01 (defaults): unshifted, 3 seeds x 2000 items, 120 checks: no alarm (lowest
Holm-adjusted p 0.011, alarm below 0.001; highest embedding AUC 0.57); lighting 0.9, 24 checks:
no alarm; lighting 0.6 + blur 1.5: the first check after the shift alarms, 50 items in, and
every later one (24 of 24).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHIFTS = {"lighting_0.9": {"lighting": 0.9}, "shifted": {"lighting": 0.6, "blur": 1.5}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact")
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reference", type=int, default=500)
    parser.add_argument("--window", type=int, default=200)
    parser.add_argument("--step", type=int, default=50)
    args = parser.parse_args()

    import numpy as np
    import torch

    from ml.engine import drift
    from ml.engine.artifact import load_artifact
    from ml.engine.generator import SurfaceConfig, generate_dataset, render_surface
    from ml.engine.train import TrainConfig, train_model

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workdir:
        artifact = args.artifact
        if artifact is None:
            generate_dataset(Path(workdir) / "data", count=400, seed=3)
            artifact = train_model(
                Path(workdir) / "data",
                Path(workdir) / "m.pt",
                config=TrainConfig(epochs=6, holdout_fraction=0.2),
            ).artifact_path
        model = load_artifact(Path(artifact))

    def images(seed: int, count: int, **knobs):
        config = SurfaceConfig(**knobs)
        return [render_surface(np.random.default_rng([seed, i]), config)[0] for i in range(count)]

    def served(imgs):
        out = []
        for first in range(0, len(imgs), 50):
            out += drift.predict_with_statistics(model, imgs[first : first + 50])
        return [(output.defect_probability, record) for output, record in out]

    reference = drift.build_reference(
        model,
        images(1, args.reference),
        jitter=float(model.hyperparameters.get("augmentation", 0.25)),
    )
    policy = drift.DriftPolicy()

    def run(items, shift_at: int = 0) -> dict:
        alarms, checks, lowest_p, top_auc = [], 0, 1.0, 0.0
        for end in range(shift_at + args.step, len(items) + 1, args.step):
            window = items[max(0, end - args.window) : end]
            result = drift.compare(
                reference,
                drift.Window.from_records([r for _, r in window], [p for p, _ in window]),
                reject_threshold=0.8,
                policy=policy,
            )
            checks += 1
            lowest_p = min([lowest_p] + [t["p_adjusted"] for t in result["tests"].values()])
            top_auc = max(top_auc, result["tests"]["embedding"]["auc"])
            if result["verdict"] != "ok":
                alarms.append(end - shift_at)
        return {
            "checks": checks,
            "alarms": len(alarms),
            "first_alarm_after_items": alarms[0] if alarms else None,
            "lowest_p_adjusted": lowest_p,
            "highest_auc": round(top_auc, 3),
        }

    rows = []
    for n in range(args.seeds):
        row = {"scenario": "unshifted", "seed": 101 + n, **run(served(images(101 + n, args.items)))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for name, knobs in SHIFTS.items():
        for n in range(max(1, args.seeds - 1)):
            before = served(images(201 + n, 2 * args.window))
            after = served(images(251 + n, 3 * args.window, **knobs))
            row = {"scenario": name, "seed": 201 + n, **run(before + after, len(before))}
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        scenario: {
            "checks": sum(r["checks"] for r in rows if r["scenario"] == scenario),
            "alarms": sum(r["alarms"] for r in rows if r["scenario"] == scenario),
            "first_alarm_after_items": [
                r["first_alarm_after_items"] for r in rows if r["scenario"] == scenario
            ],
        }
        for scenario in ("unshifted", *SHIFTS)
    }
    print(json.dumps({"summary": summary, "policy": policy.to_dict()}))


if __name__ == "__main__":
    main()
