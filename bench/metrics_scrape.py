"""What a /metrics scrape costs the database: the figures read at scrape time (loupe.metrics_view
DatabaseFigures) over a busy install.

The data: 10 stations on 5 lines posting 20 items/s together (the issue's plant), for as many
items as asked (default 1,000,000: the last 14 hours), each decided (95% by the model, 5% by a
human), a 5% audit sample decided by people, 200 items waiting for review, 20 not yet routed and
a few escapes. Rows are written by SQL in bulk, not through the services: this measures reads.

    .venv/bin/python bench/metrics_scrape.py                 # about 2 minutes on 2 cores
    .venv/bin/python bench/metrics_scrape.py --items 200000  # a quicker look

Self-contained and repeatable: it drops and recreates its own database (loupe_bench_metrics);
BENCH_POSTGRES_URL points it at another server. Prints the median of 5 scrapes, in ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DB_NAME = "loupe_bench_metrics"
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432")
RATE = 20  # items per second, all stations together

ITEMS_SQL = """
INSERT INTO inspection_inspection (station_id, line_id, external_id, metadata, image,
    image_sha256, image_format, width, height, received_at, status, automation_level,
    accept_threshold, reject_threshold, latency_budget_ms, fail_safe_action, audit_fraction,
    model_version_id, fail_safe_reason, routed_at)
SELECT s.id, s.line_id, 'SN-' || g, '{}', 'bench.png', md5(g::text) || md5(g::text), 'PNG',
    128, 128, now() - (g::float / %(rate)s) * interval '1 second', 'decided', 'full', 0.2, 0.8,
    1000, 'review', 0.05, %(version)s, '', now() - (g::float / %(rate)s) * interval '1 second'
FROM generate_series(1, %(items)s) g
JOIN (SELECT id, line_id, row_number() OVER (ORDER BY id) - 1 AS n FROM inspection_station) s
    ON s.n = g %% 10
"""
DECISIONS_SQL = """
INSERT INTO inspection_decision (inspection_id, outcome, decided_by, inspector_id,
    model_version_id, decided_at, final_at)
SELECT i.id, CASE WHEN i.id %% 7 = 0 THEN 'reject' ELSE 'accept' END,
    CASE WHEN i.id %% 20 = 1 THEN 'human' ELSE 'model' END,
    CASE WHEN i.id %% 20 = 1 THEN %(user)s END,
    %(version)s,
    i.received_at + CASE WHEN i.id %% 20 = 1 THEN interval '40 seconds' ELSE interval '50 ms' END,
    i.received_at + CASE WHEN i.id %% 20 = 1 THEN interval '50 seconds' ELSE interval '50 ms' END
FROM inspection_inspection i
"""
REVIEWS_SQL = """
INSERT INTO inspection_reviewitem (reason, shows_model, state, decision, decided_at,
    model_agrees, created_at, inspector_id, inspection_id, time_spent_ms)
SELECT 'audit', false, 'decided', 'accept', i.received_at + interval '60 seconds',
    i.id %% 40 <> 0, i.received_at, %(user)s, i.id, 2500
FROM inspection_inspection i WHERE i.id %% 20 = 0
"""


def configure() -> None:
    os.environ.update(
        DATABASE_URL=f"{PG_URL}/{DB_NAME}",
        SECRET_KEY="bench-only-secret-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
        ALLOWED_HOSTS="localhost",
        CELERY_BROKER_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"),
        DJANGO_SETTINGS_MODULE="loupe.settings",
        DEBUG="0",
    )


def recreate_database() -> None:
    for sql in (f"DROP DATABASE IF EXISTS {DB_NAME}", f"CREATE DATABASE {DB_NAME}"):
        subprocess.run(["psql", f"{PG_URL}/postgres", "-qc", sql], check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True, env=os.environ
    )


def fill(items: int) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from inspection import services
    from inspection.models import Escape, Inspection, InspectionStatus, ReviewItem
    from tests.helpers import seed_model_version

    version = seed_model_version("bench-v1")
    user = get_user_model().objects.create_user("bench-inspector")
    for n in range(5):
        line = services.create_line(name=f"line-{n}", level="full")
        for cam in ("a", "b"):
            services.create_station(line=line, name=f"cam-{cam}")
    params = {"items": items, "rate": RATE, "version": version.pk, "user": user.pk}
    with connection.cursor() as cursor:
        for sql in (ITEMS_SQL, DECISIONS_SQL, REVIEWS_SQL):
            cursor.execute(sql, params)
    newest = list(Inspection.objects.order_by("-received_at").values_list("pk", flat=True)[:220])
    Inspection.objects.filter(pk__in=newest[:20]).update(status=InspectionStatus.RECEIVED)
    ReviewItem.objects.filter(inspection_id__in=newest[20:]).delete()
    ReviewItem.objects.bulk_create(
        ReviewItem(inspection_id=pk, reason="unsure", state="open") for pk in newest[20:]
    )
    for pk in newest[300:310]:
        inspection = Inspection.objects.get(pk=pk)
        Escape.objects.create(
            inspection=inspection, line_id=inspection.line_id, model_version=version,
            source="audit", recorded_at=inspection.received_at,
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    args = parser.parse_args()
    configure()
    started = time.perf_counter()
    recreate_database()
    import django

    django.setup()
    fill(args.items)
    print(f"filled {args.items} items in {time.perf_counter() - started:.0f} s")
    from prometheus_client import CollectorRegistry, generate_latest

    from loupe.metrics_view import DatabaseFigures

    rounds = []
    for _ in range(6):
        registry = CollectorRegistry()
        registry.register(DatabaseFigures())
        begun = time.perf_counter()
        text = generate_latest(registry)
        rounds.append((time.perf_counter() - begun) * 1000)
    assert b"loupe_metrics_database_up 1.0" in text
    print(
        f"database figures of one scrape: {statistics.median(rounds[1:]):.0f} ms (median of 5, "
        f"after a first at {rounds[0]:.0f} ms); {args.items} items, the last "
        f"{args.items / RATE / 3600:.1f} h at {RATE} items/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
