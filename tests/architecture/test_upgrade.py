"""An installed Loupe upgrades in place: a database holding the schema and data of the last
release (before decisions stored final_at and the renames) migrates to the new head with
nothing lost and every new fact filled in."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

# The migration heads of the release before this change.
RELEASED = [
    ("inspection", "0003_unrouted_index"),
    ("review", "0001_initial"),
    ("labeling", "0001_initial"),
    ("datasets", "0002_export_removed_at"),
    ("ml", "0002_registry_and_pipeline"),
]

pytestmark = pytest.mark.django_db(transaction=True)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def _head():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


def test_released_schema_and_data_upgrade_to_head(settings):
    settings.LOUPE_UNDO_WINDOW_S = 10
    old = _migrate(RELEASED)
    User = old.get_model("auth", "User")
    Line = old.get_model("inspection", "Line")
    Station = old.get_model("inspection", "Station")
    Inspection = old.get_model("inspection", "Inspection")
    Decision = old.get_model("inspection", "Decision")
    ReviewItem = old.get_model("inspection", "ReviewItem")
    LineChange = old.get_model("inspection", "LineChange")
    ModelVersion = old.get_model("ml", "ModelVersion")
    LinePolicy = old.get_model("ml", "LinePolicy")

    ana = User.objects.create(username="ana")
    version = ModelVersion.objects.create(
        name="v1", artifact_path="v1.pt", artifact_sha256="a" * 64, architecture="tiny"
    )
    line = Line.objects.create(name="press-4", defect_classes=["scratch"], active_model=version)
    LinePolicy.objects.create(line=line, mlops_level="assisted", retrain_every_corrections=7)
    LineChange.objects.create(
        line=line, field="automation_level", old_value="shadow", new_value="full", changed_by="sam"
    )
    station = Station.objects.create(line=line, name="cam", token_hash="h" * 64, token_prefix="p")
    decided_at = timezone.now() - timedelta(hours=1)
    policy = {
        "automation_level": "partial",
        "accept_threshold": 0.2,
        "reject_threshold": 0.8,
        "latency_budget_ms": 1000,
        "fail_safe_action": "review",
        "audit_fraction": 0.02,
    }

    def item(external_id, status):
        return Inspection.objects.create(
            station=station,
            line=line,
            external_id=external_id,
            image="a.png",
            image_sha256="b" * 64,
            image_format="PNG",
            width=8,
            height=8,
            received_at=decided_at,
            status=status,
            **policy,
        )

    by_model, by_human, waiting = item("m", "decided"), item("h", "decided"), item("w", "in_review")
    Decision.objects.create(
        inspection=by_model,
        outcome="reject",
        decided_by="model",
        model_version=version,
        decided_at=decided_at,
    )
    Decision.objects.create(
        inspection=by_human,
        outcome="accept",
        decided_by="human",
        inspector=ana,
        decided_at=decided_at,
    )
    ReviewItem.objects.create(
        inspection=by_human,
        reason="unsure",
        state="decided",
        decision="accept",
        decided_by=ana,
        decided_at=decided_at,
    )
    ReviewItem.objects.create(inspection=waiting, reason="unsure")

    new = _migrate(_head())

    Decision = new.get_model("inspection", "Decision")
    assert Decision.objects.get(inspection_id=by_model.pk).final_at == decided_at
    human = Decision.objects.get(inspection_id=by_human.pk)
    assert human.final_at == decided_at + timedelta(seconds=10)
    ReviewItem = new.get_model("inspection", "ReviewItem")
    assert ReviewItem.objects.get(inspection_id=by_human.pk).inspector_id == ana.pk
    assert ReviewItem.objects.get(inspection_id=waiting.pk).inspector_id is None
    Policy = new.get_model("ml", "RetrainingPolicy")
    kept = Policy.objects.get(line_id=line.pk)
    assert (kept.mlops_level, kept.retrain_every_corrections) == ("assisted", 7)
    changes = new.get_model("inspection", "LineChange").objects.filter(line_id=line.pk)
    assert list(changes.values_list("field", "new_value")) == [("automation_level", "full")]
    assert new.get_model("inspection", "Inspection").objects.filter(line_id=line.pk).count() == 3
