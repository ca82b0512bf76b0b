"""Export memory: a dataset version of 50,000 items exported in every format, each export in
a fresh process, with its peak resident memory and its time.

The items are cheap to build and real to export: 50,000 inspections and annotation revisions
in PostgreSQL that share eight generated product images (128 px PNG, as stations send), so
every zip holds 50,000 image files. Memory does not depend on how many distinct images there
are: each is copied into the zip from its stored file in blocks.

    .venv/bin/python bench/export_memory.py              # about 5 minutes on 2 cores
    .venv/bin/python bench/export_memory.py --items 5000 # a quicker look

Self-contained and repeatable: it drops and recreates its own database (loupe_bench_export)
and rebuilds var/bench-export/. BENCH_POSTGRES_URL points it at another server. The zips are
deleted after each measurement (50,000 images make about 1.6 GB per format).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "var" / "bench-export"
DB_NAME = "loupe_bench_export"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
FORMATS = ("coco", "yolo", "imagefolder", "csv")
DISTINCT_IMAGES = 8
CHUNK = 5000


def configure() -> None:
    os.environ.update(
        DEBUG="0",
        SECRET_KEY="bench-only-not-a-secret-padded-to-fifty-characters-0123456789",
        ALLOWED_HOSTS="localhost",
        DATABASE_URL=f"{PG_URL}/{DB_NAME}",
        CELERY_BROKER_URL="memory://",
        LOUPE_VAR_DIR=str(BENCH_DIR),
        MEDIA_ROOT=str(BENCH_DIR / "media"),
        DJANGO_SETTINGS_MODULE="loupe.settings",
    )
    import django

    django.setup()


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux keeps
    ru_maxrss across fork and exec, so a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DB_NAME}")


def build(items: int) -> tuple[str, float]:
    """Migrate, store the images, create the labeled inspections, freeze; return the
    version's name and the freeze time."""
    import shutil

    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    (BENCH_DIR / "media").mkdir(parents=True)
    recreate_database()
    configure()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from datasets.services import freeze_dataset
    from inspection import decisions, services, storage
    from inspection.images import validate_image
    from labeling import services as labeling_services
    from ml.engine.generator import generate_dataset

    call_command("migrate", verbosity=0)
    line = services.create_line(name="bench-line")
    user = get_user_model().objects.create_user("bench")
    generate_dataset(BENCH_DIR / "source", count=DISTINCT_IMAGES, seed=1)
    images = []
    for path in sorted((BENCH_DIR / "source" / "images").glob("*.png")):
        image = validate_image(path.read_bytes(), max_bytes=10**8, max_pixels=10**8)
        name = storage.store_image(image.data, sha256=image.sha256, extension="png")
        images.append((name, image))
    boxes = [
        [],
        [{"x0": 10.5, "y0": 12.25, "x1": 40.0, "y1": 30.75, "label": "scratch"}],
        [
            {"x0": 60.0, "y0": 70.0, "x1": 90.5, "y1": 100.0, "label": "dent"},
            {"x0": 5.0, "y0": 90.0, "x1": 20.0, "y1": 120.0, "label": "spot"},
        ],
    ]
    # seeded the way an import records labeled history: through the owners of those rows
    import_station = services.import_station(line)
    routing_policy = services.routing_policy_snapshot(line)
    for start in range(0, items, CHUNK):
        chunk = range(start, min(start + CHUNK, items))
        inspections = decisions.record_imported_inspections(
            station=import_station,
            inspector=user,
            routing_policy=routing_policy,
            items=[
                decisions.ImportedItem(
                    external_id=f"SN-{i}",
                    image_name=images[i % len(images)][0],
                    sha256=images[i % len(images)][1].sha256,
                    image_format="PNG",
                    width=images[i % len(images)][1].width,
                    height=images[i % len(images)][1].height,
                    outcome="reject" if boxes[i % 3] else "accept",
                )
                for i in chunk
            ],
        )
        labeling_services.record_imported_labels(
            author=user,
            labels=[
                (inspection, "defective" if boxes[i % 3] else "ok", boxes[i % 3], "")
                for i, inspection in zip(chunk, inspections, strict=True)
            ],
        )
    started = time.perf_counter()
    version, _ = freeze_dataset(filters={}, name="bench")
    return version.name, time.perf_counter() - started


def measure_export(version_name: str, fmt: str) -> dict:
    """In a fresh process: export once, report time, size and peak RSS."""
    configure()
    from datasets import exporters
    from datasets.models import DatasetVersion

    version = DatasetVersion.objects.get(name=version_name)
    before = peak_rss_mib()
    dest = BENCH_DIR / f"{fmt}.zip"
    started = time.perf_counter()
    size = exporters.write_export(version=version, fmt=fmt, dest=dest)
    seconds = time.perf_counter() - started
    dest.unlink()
    return {
        "format": fmt,
        "items": exporters.count_items(version, fmt),
        "seconds": round(seconds, 1),
        "zip_mib": round(size / 2**20),
        "rss_before_mib": round(before),
        "peak_rss_mib": round(peak_rss_mib()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument(
        "--reuse", action="store_true", help="export the version a previous run built"
    )
    parser.add_argument("--child", nargs=2, metavar=("VERSION", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure_export(*args.child)))
        return
    started = time.perf_counter()
    if args.reuse:
        name = "bench"
    else:
        name, freeze_seconds = build(args.items)
        print(
            f"built {args.items} labeled items in {time.perf_counter() - started:.0f} s; "
            f"freeze_dataset took {freeze_seconds:.1f} s"
        )
    print(
        f"{'format':<12}{'items':>8}{'time s':>9}{'zip MiB':>9}{'RSS before':>12}{'peak RSS':>10}"
    )
    results = []
    for fmt in FORMATS:
        output = subprocess.run(
            [sys.executable, __file__, "--child", name, fmt],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(output.strip().splitlines()[-1])
        results.append(result)
        print(
            f"{fmt:<12}{result['items']:>8}{result['seconds']:>9}{result['zip_mib']:>9}"
            f"{result['rss_before_mib']:>9} MiB{result['peak_rss_mib']:>7} MiB"
        )
    (BENCH_DIR / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
