"""The monitoring page and its job, measured.

1. The page: 30 days of one line with 10 stations at 2 items/s each (1,200 items a minute),
   seeded as the job would leave them: a minute bucket for every minute of the 30 days (the
   job keeps 3 days of them; all 30 here, the worst case) and the hour buckets summed from
   them, with realistic histograms. Then each range of the page is asked with Django's test
   client, as a logged-in supervisor, warm, N times: median and p95 in ms. Target for 30 days:
   at most 300 ms.
2. The job: a realistic minute of ~1,200 inspections on another line, received, predicted
   (a stand-in model that answers at once, so no network runs) and routed by the real
   services, some of them reviewed by a human; then runs of monitoring.aggregation's periodic
   job over it, timed.

    .venv/bin/python bench/monitoring_page.py            # about 3 minutes on 2 cores
    .venv/bin/python bench/monitoring_page.py --days 3 --job-items 300   # a quicker look

Self-contained and repeatable: it drops and recreates its own database
(loupe_bench_monitoring) and var/bench-monitoring/. BENCH_POSTGRES_URL points it at another
server. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BENCH_DIR = ROOT / "var" / "bench-monitoring"
DB_NAME = "loupe_bench_monitoring"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
STATIONS = 10
ITEMS_PER_STATION_S = 2
PASSWORD = "bench-monitoring-password-1"


def configure() -> None:
    os.environ.update(
        DEBUG="0",
        SECRET_KEY="bench-only-not-a-secret-padded-to-fifty-characters-0123456789",
        ALLOWED_HOSTS="localhost,testserver",
        DATABASE_URL=f"{PG_URL}/{DB_NAME}",
        CELERY_BROKER_URL="memory://",
        CELERY_TASK_ALWAYS_EAGER="1",
        LOUPE_VAR_DIR=str(BENCH_DIR),
        MEDIA_ROOT=str(BENCH_DIR / "media"),
        SECURE_SSL_REDIRECT="0",
        DJANGO_SETTINGS_MODULE="loupe.settings",
    )
    import django

    django.setup()


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        connection.execute(f"CREATE DATABASE {DB_NAME}")


def setup() -> None:
    import shutil

    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    (BENCH_DIR / "media").mkdir(parents=True)
    recreate_database()
    configure()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed_model_version(name: str):
    """A registry row whose artifact is never loaded: the stand-in model answers instead."""
    import hashlib

    from ml.models import ModelVersion

    return ModelVersion.objects.create(
        name=name,
        artifact_path=f"{name}.pt",
        artifact_sha256=hashlib.sha256(name.encode()).hexdigest(),
        architecture="bench",
        classes=["scratch", "dent", "spot", "crack"],
    )


def make_line(name: str):
    from inspection import services
    from ml import services as ml_services

    line = services.create_line(name=name, level="partial", audit_fraction=0.02)
    stations = [services.create_station(line=line, name=f"cam-{n}")[0] for n in range(STATIONS)]
    ml_services.set_active_version(
        line=line, model_version=seed_model_version(f"{name}-model"), changed_by="bench"
    )
    return line, stations


# 1. The page ---------------------------------------------------------------------------------


def _histogram(rng: random.Random, n: int, median_ms: float, spread: float) -> dict:
    from monitoring import histograms

    counts: dict = {}
    for _ in range(40):  # 40 draws scaled to n: the shape of a minute, cheaply
        index = histograms.bin_of(rng.lognormvariate(0, spread) * median_ms)
        counts[index] = counts.get(index, 0) + 1
    scaled = {str(k): max(1, round(v * n / 40)) for k, v in counts.items()}
    return scaled


def minute_figures(rng: random.Random, station_ids: list[int]):
    from monitoring.aggregation import Figures

    per_station = ITEMS_PER_STATION_S * 60
    items = per_station * len(station_ids)
    figures = Figures()
    figures.items = figures.routed = figures.predictions = items
    figures.station_items = {str(s): per_station for s in station_ids}
    figures.route_latency = _histogram(rng, items, 45, 0.5)
    figures.model_latency = _histogram(rng, items, 25, 0.4)
    rejects = rng.randint(int(items * 0.08), int(items * 0.12))
    reviews = rng.randint(int(items * 0.03), int(items * 0.06))
    figures.rejects, figures.accepts = rejects, items - rejects - reviews
    figures.decided_by_model = items - reviews
    figures.decided_by_human = figures.reviews_decided = reviews
    figures.review_wait = _histogram(rng, reviews, 90_000, 1.0)
    fail_safes = rng.randint(0, 3)
    figures.fail_safes = fail_safes
    figures.fail_safe_reasons = {"budget_missed": fail_safes} if fail_safes else {}
    figures.unbiased_items = rng.randint(20, 30)
    figures.unbiased_agreeing = figures.unbiased_items - rng.randint(0, 2)
    figures.seen_items = reviews - figures.unbiased_items if reviews > 30 else 0
    figures.seen_agreeing = figures.seen_items
    figures.escapes = 1 if rng.random() < 0.002 else 0
    figures.review_backlog = figures.review_backlog_peak = rng.randint(5, 80)
    return figures


def seed_buckets(line, stations, days: int) -> dict:
    from django.utils import timezone

    from monitoring.aggregation import Figures, floor_to
    from monitoring.models import Bucket, Width

    rng = random.Random(11)
    now = timezone.now()
    station_ids = [s.pk for s in stations]
    start = floor_to(now, Width.HOUR) - timedelta(days=days) + timedelta(hours=1)
    minutes = hours = 0
    hour = start
    began = time.monotonic()
    while hour <= now:
        total = Figures()
        rows = []
        for m in range(60):
            moment = hour + timedelta(minutes=m)
            if moment > now:
                break
            figures = minute_figures(rng, station_ids)
            total.add(figures)
            total.review_backlog_peak = max(total.review_backlog_peak, figures.review_backlog)
            total.review_backlog = figures.review_backlog
            rows.append(
                figures.bucket(line_id=line.pk, width_s=Width.MINUTE, start=moment, now=now)
            )
        rows.append(total.bucket(line_id=line.pk, width_s=Width.HOUR, start=hour, now=now))
        Bucket.objects.bulk_create(rows)
        minutes += len(rows) - 1
        hours += 1
        hour += timedelta(hours=1)
    return {"minute_buckets": minutes, "hour_buckets": hours, "seconds": time.monotonic() - began}


def time_page(line, repeats: int) -> dict:
    from django.test import Client

    from accounts.services import create_user
    from monitoring.figures import RANGES

    user = create_user(
        username="bench-sup", role="supervisor", line_names=[line.name], password=PASSWORD
    )
    client = Client()
    client.force_login(user)
    results = {}
    for key in RANGES:
        url = f"/lines/{line.pk}/monitoring/?range={key}"
        for _ in range(3):  # warm: templates, connections, caches
            assert client.get(url).status_code == 200
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200
        times.sort()
        results[key] = {
            "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
            "max_ms": round(times[-1], 1),
            "bytes": len(response.content),
        }
    return results


# 2. The job ----------------------------------------------------------------------------------


def seed_minute(line, stations, items: int) -> dict:
    """`items` inspections received, predicted and routed by the real services, spread over the
    stations; the unsure ones partly decided by an inspector, as in a minute of a busy line."""
    from accounts.services import create_user
    from inspection import inference, services
    from inspection.images import validate_image
    from inspection.models import ReviewItem, ReviewState
    from ml.engine.types import ModelOutput
    from review import services as review_services
    from tests.helpers import image_bytes

    rng = random.Random(5)
    images = [
        validate_image(image_bytes(seed=n), max_bytes=10_000_000, max_pixels=10_000_000)
        for n in range(8)
    ]
    probabilities: dict[str, float] = {}

    def stand_in(model_version, path):
        return ModelOutput(probabilities[path.name], ()), rng.uniform(15, 40), {}

    real = inference.predict_image_with_statistics
    inference.predict_image_with_statistics = None
    began = time.monotonic()
    try:
        for n in range(items):
            image = images[n % len(images)]
            inspection, _ = services.receive_inspection(
                station=stations[n % len(stations)],
                external_id=f"job-{n}",
                image=image,
                metadata={},
            )
            draw = rng.random()
            p = 0.05 if draw < 0.85 else 0.95 if draw < 0.95 else 0.5
            probabilities[Path(inspection.image.name).name] = p
            inference.predict_image_with_statistics = stand_in
            services.predict_and_route(inspection_id=inspection.pk)
            # one image file serves many items: the stand-in reads p per item, by its file
            probabilities.pop(Path(inspection.image.name).name)
    finally:
        inference.predict_image_with_statistics = real
    inspector = create_user(
        username="bench-ines", role="inspector", line_names=[line.name], password=PASSWORD
    )
    open_items = list(
        ReviewItem.objects.filter(inspection__line=line, state=ReviewState.OPEN).order_by("pk")
    )
    for item in open_items[: len(open_items) * 2 // 3]:
        review_services.decide_review_item(
            item=item, inspector=inspector, outcome=rng.choice(["accept", "reject"])
        )
    return {
        "inspections": items,
        "reviewed": len(open_items) * 2 // 3,
        "seconds": round(time.monotonic() - began, 1),
    }


def time_job(runs: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from monitoring import aggregation

    times = []
    for _ in range(runs):
        with CaptureQueriesContext(connection) as queries:
            result = aggregation.aggregate_recent()
        times.append(result.seconds * 1000)
    return {
        "runs": runs,
        "median_ms": round(statistics.median(times), 1),
        "max_ms": round(max(times), 1),
        "queries": len(queries),
        "minute_buckets": result.minute_buckets,
        "window_minutes": round((result.until - result.since).total_seconds() / 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--job-items", type=int, default=1200)
    args = parser.parse_args()

    setup()
    line, stations = make_line("bench-page")
    seeded = seed_buckets(line, stations, args.days)
    page = time_page(line, args.repeats)
    job_line, job_stations = make_line("bench-job")
    minute = seed_minute(job_line, job_stations, args.job_items)
    job = time_job(5)
    print(
        json.dumps(
            {
                "days": args.days,
                "stations": STATIONS,
                "items_per_station_s": ITEMS_PER_STATION_S,
                "seeded": {
                    k: round(v, 1) if isinstance(v, float) else v for k, v in seeded.items()
                },
                "page": page,
                "page_30d_target_ms": 300,
                "page_30d_ok": page["30d"]["median_ms"] <= 300 if "30d" in page else None,
                "job_minute": minute,
                "job": job,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
