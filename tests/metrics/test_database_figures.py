"""The figures /metrics reads from the database at scrape time, on seeded lines."""

from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from inspection import services
from inspection.models import Decision, Escape, Inspection, ReviewItem
from ml import services as ml_services
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version
from tests.metrics.conftest import Scrape

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _metrics_settings(settings, tmp_path):
    settings.LOUPE_METRICS_DIR = tmp_path / "metrics"
    settings.LOUPE_METRICS_TOKEN = ""


def scrape(client) -> Scrape:
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    assert response.status_code == 200
    return Scrape(response.content.decode())


@pytest.fixture
def seeded(django_user_model):
    """fig-a: full automation, 3 items the model accepted (one an escape), 1 not yet routed.
    fig-b: shadow, 2 items in review, 1 decided by a human (agreeing) 89 s after arrival."""
    version = seed_model_version("v1")
    line_a = services.create_line(name="fig-a", level="full", audit_fraction=0.0)
    line_b = services.create_line(name="fig-b", level="shadow", latency_budget_ms=800)
    for line in (line_a, line_b):
        ml_services.set_active_version(line=line, model_version=version, changed_by="test")
    cam_a, _ = services.create_station(line=line_a, name="cam-a")
    cam_b, _ = services.create_station(line=line_b, name="cam-b")
    accepted = [
        seed_inspection(cam_a, f"A-{i}", probability=0.1, model_version=version) for i in range(3)
    ]
    Escape.objects.create(
        inspection=accepted[0],
        line=line_a,
        model_version=version,
        source="audit",
        recorded_at=timezone.now(),
    )
    waiting = seed_inspection(cam_a, "A-waiting")
    Inspection.objects.filter(pk=waiting.pk).update(
        received_at=F("received_at") - timedelta(seconds=30)
    )
    reviewed = [
        seed_inspection(cam_b, f"B-{i}", probability=0.9, model_version=version) for i in range(2)
    ]
    ReviewItem.objects.filter(inspection__in=reviewed).update(
        created_at=F("created_at") - timedelta(seconds=120)
    )
    decided = reviewed[0]
    Inspection.objects.filter(pk=decided.pk).update(
        received_at=F("received_at") - timedelta(seconds=100)
    )
    decide_review_item(
        item=decided.review_item,
        inspector=django_user_model.objects.create_user("ina"),
        outcome="reject",
    )
    # as if the undo window had passed 11 s ago
    passed = timedelta(seconds=11)
    Decision.objects.filter(inspection=decided).update(
        decided_at=F("decided_at") - passed, final_at=timezone.now() - passed
    )


def test_line_review_decision_agreement_escape_and_queue_figures(client, seeded):
    figures = scrape(client)
    assert figures.value("loupe_metrics_database_up") == 1
    assert figures.value("loupe_line_info", line="fig-a", level="full", model_version="v1") == 1
    assert figures.value("loupe_line_latency_budget_seconds", line="fig-b") == 0.8
    assert figures.value("loupe_line_agreement_target", line="fig-a") == 0.95

    assert figures.value("loupe_review_backlog_items", line="fig-b", reason="every_item") == 1
    assert figures.value("loupe_review_backlog_items", line="fig-a") == 0
    assert 119 <= figures.value("loupe_review_oldest_open_age_seconds", line="fig-b") < 150
    assert figures.value("loupe_review_oldest_open_age_seconds", line="fig-a") == 0
    waits = figures.value("loupe_review_time_to_decision_seconds", line="fig-b", quantile="0.5")
    assert 85 <= waits <= 95

    assert figures.value("loupe_decisions_window", line="fig-a", decided_by="model") == 3
    assert figures.value("loupe_decisions_window", line="fig-b", decided_by="human") == 1
    assert figures.value("loupe_auto_decision_share", line="fig-a") == 1.0
    assert figures.value("loupe_auto_decision_share", line="fig-b") == 0.0

    unbiased = dict(line="fig-b", model_version="v1", evidence="unbiased")
    # the shadow item: the human did not see the model, and agreed with it
    assert figures.value("loupe_agreement_ratio", **unbiased) == 1.0
    assert figures.value("loupe_agreement_items_window", line="fig-b") == 1

    assert (
        figures.value("loupe_escapes_total", line="fig-a", model_version="v1", source="audit") == 1
    )

    assert figures.value("loupe_queue_depth", queue="inference", line="fig-a") == 1
    assert figures.value("loupe_queue_depth", queue="inference", line="fig-b") == 0
    oldest = figures.value("loupe_queue_oldest_age_seconds", queue="inference", line="fig-a")
    assert 30 <= oldest < 90
    assert figures.value("loupe_broker_up") == 1
    assert figures.samples("loupe_broker_queue_messages", queue="inference")


def test_a_database_that_fails_still_gives_the_process_figures(client, monkeypatch):
    from loupe import metrics_view

    def fail(self):
        raise DatabaseError("connection refused")
        yield  # pragma: no cover

    monkeypatch.setattr(metrics_view.DatabaseFigures, "families", fail)
    figures = scrape(client)
    assert figures.value("loupe_metrics_database_up") == 0
    assert "loupe_station_requests" in figures.names
    assert not figures.samples("loupe_line_info")
