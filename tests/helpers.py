"""Helpers the Django tests share."""

import io

from PIL import Image

LEVELS = ["human_only", "shadow", "assist", "partial", "full"]


def image_bytes(fmt: str = "PNG", size=(128, 128), mode: str = "RGB", seed: int = 0) -> bytes:
    """A small generated product image (a gradient with a dark spot; seed varies it)."""
    image = Image.new(mode, size)
    if mode in ("RGB", "L", "RGBA"):
        image = Image.linear_gradient("L").resize(size).convert(mode)
        spot = Image.new(mode, (8 + seed % 20, 8), color=0 if mode == "L" else (0,) * len(mode))
        image.paste(spot, (seed * 7 % (size[0] - 30), seed * 13 % (size[1] - 10)))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def seed_model_version(name: str = "seeded"):
    """A registered version whose artifact is never loaded: for tests that record predictions
    themselves instead of running a network."""
    import hashlib

    from ml.models import ModelVersion

    return ModelVersion.objects.create(
        name=name,
        artifact_path=f"{name}.pt",
        artifact_sha256=hashlib.sha256(name.encode()).hexdigest(),
        architecture="seeded",
        classes=["scratch", "dent", "spot", "crack"],
    )


def seed_inspection(station, external_id, *, probability=None, regions=(), model_version=None):
    """An inspection received and routed by the real services, with the model's output given
    instead of computed: the station's line decides what happens (review item, decision...).

    regions: dicts {x0, y0, x1, y1, label, score}. Needs probability and model_version at the
    levels that run a model.
    """
    from inspection import decisions, routing, services
    from inspection.images import validate_image
    from ml.engine.types import ModelOutput, Region

    data = image_bytes(seed=sum(external_id.encode()) % 97)
    image = validate_image(data, max_bytes=10_000_000, max_pixels=10_000_000)
    inspection, _ = services.receive_inspection(
        station=station, external_id=external_id, image=image, metadata={}
    )
    if probability is None:
        return inspection
    output = ModelOutput(probability, tuple(Region(**r) for r in regions))
    services.record_prediction(
        inspection=inspection,
        model_version=model_version,
        output=output,
        latency_ms=5.0,
        is_late=False,
    )
    route = routing.route_with_model(
        decisions.routing_policy_of(inspection),
        probability,
        audit_key=f"{inspection.station_id}:{inspection.external_id}",
    )
    decisions.record_route(inspection, route, model_version=model_version)
    inspection.refresh_from_db()
    return inspection


def artifact_copies(source, folder, names: tuple[str, ...]) -> list:
    """Copies of a model artifact in `folder`, each after the first one byte longer than the
    one before: another hash, so another model version, with the same network (torch ignores
    bytes after the archive)."""
    import shutil

    paths = []
    for extra, name in enumerate(names):
        target = folder / name
        shutil.copy(source, target)
        with open(target, "ab") as handle:
            handle.write(b"\0" * extra)
        paths.append(target)
    return paths


def run_embedded_demo(tmp_path, command: list[str], *, timeout_s: float) -> dict:
    """`manage.py <command>` in its own process on a fresh, empty embedded database (SQLite,
    tasks in process) under tmp_path; prints its output's tail and returns its last line,
    a JSON object. Fails the test when the command fails."""
    import json
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")
        and not key.startswith("DJANGO_")
    }
    env["LOUPE_VAR_DIR"] = str(tmp_path / "var")
    manage = [sys.executable, str(root / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], cwd=root, env=env, check=True)
    started = time.monotonic()
    run = subprocess.run(
        [*manage, *command, "--work-dir", str(tmp_path / "images")],
        cwd=root, env=env, capture_output=True, text=True, timeout=timeout_s,
    )  # fmt: skip
    print(run.stdout[-4000:], run.stderr[-2000:], sep="\n")
    print(f"{command[0]} took {time.monotonic() - started:.0f} s")
    assert run.returncode == 0
    return json.loads(run.stdout.strip().splitlines()[-1])
