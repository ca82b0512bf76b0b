"""Two partial indexes on review items for the monitoring job's reads of a few minutes: the
items decided in a window, and the open backlog. Partial, so neither costs anything when a
station's item is routed to review: an open item has no decided_at, and only the open index
gains an entry, the one the review queue's oldest-open-first order can use too. Built
CONCURRENTLY on PostgreSQL, so an upgrade never blocks the review queue's writes."""

from django.db import migrations

INDEXES = [
    ("monitoring_review_decided_at", "decided_at", "decided_at IS NOT NULL"),
    ("monitoring_review_open", "created_at", "state = 'open'"),
]


def create(apps, schema_editor):
    concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
    for name, column, condition in INDEXES:
        schema_editor.execute(
            f"CREATE INDEX {concurrently}IF NOT EXISTS {name} "
            f"ON inspection_reviewitem ({column}) WHERE {condition}"
        )


def drop(apps, schema_editor):
    for name, _, _ in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("monitoring", "0001_initial"),
        ("inspection", "0005_escapes_and_offline_items"),
    ]

    operations = [migrations.RunPython(create, drop)]
