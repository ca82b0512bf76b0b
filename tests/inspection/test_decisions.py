"""inspection.decisions, the one owner of decisions: when a decision becomes final, undo, and
items imported already decided."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection import decisions, services
from inspection.errors import DecisionFinal
from inspection.models import Decision, Inspection, InspectionStatus
from tests.helpers import seed_inspection

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(make_line):
    line = make_line(name="press-4")  # human_only: every item waits for a human
    station, _ = services.create_station(line=line, name="cam")
    return seed_inspection(station, "item-1")


@pytest.fixture
def ana():
    return get_user_model().objects.create_user("ana")


def test_a_human_decision_is_final_at_the_end_of_the_undo_window(waiting, ana, settings):
    settings.LOUPE_UNDO_WINDOW_S = 10
    now = timezone.now()
    decision = decisions.record_human_decision(
        inspection_id=waiting.pk, outcome="reject", inspector=ana, decided_at=now
    )
    assert decision.final_at == now + timedelta(seconds=10)
    assert Inspection.objects.get(pk=waiting.pk).status == InspectionStatus.DECIDED
    assert not Decision.objects.final(now + timedelta(seconds=9)).exists()
    assert Decision.objects.final(now + timedelta(seconds=10)).get() == decision


def test_undo_before_final_returns_the_item_to_review(waiting, ana):
    now = timezone.now()
    decisions.record_human_decision(
        inspection_id=waiting.pk, outcome="reject", inspector=ana, decided_at=now
    )
    decisions.undo_human_decision(inspection_id=waiting.pk, inspector=ana, now=now)
    assert not Decision.objects.filter(inspection=waiting).exists()
    assert Inspection.objects.get(pk=waiting.pk).status == InspectionStatus.IN_REVIEW


def test_a_final_decision_cannot_be_undone(waiting, ana, settings):
    now = timezone.now()
    decisions.record_human_decision(
        inspection_id=waiting.pk, outcome="reject", inspector=ana, decided_at=now
    )
    # the window includes its last moment, as the review queue's undo always has
    later = now + timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S, microseconds=1)
    with pytest.raises(DecisionFinal):
        decisions.undo_human_decision(inspection_id=waiting.pk, inspector=ana, now=later)
    assert Decision.objects.get(inspection=waiting).outcome == "reject"


def test_only_the_deciding_inspector_can_undo(waiting, ana):
    bo = get_user_model().objects.create_user("bo")
    now = timezone.now()
    decisions.record_human_decision(
        inspection_id=waiting.pk, outcome="accept", inspector=ana, decided_at=now
    )
    with pytest.raises(DecisionFinal):
        decisions.undo_human_decision(inspection_id=waiting.pk, inspector=bo, now=now)
    assert Decision.objects.filter(inspection=waiting).exists()


def test_a_second_decision_is_refused_by_the_database(waiting, ana):
    now = timezone.now()
    decisions.record_human_decision(
        inspection_id=waiting.pk, outcome="accept", inspector=ana, decided_at=now
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        decisions.record_human_decision(
            inspection_id=waiting.pk, outcome="reject", inspector=ana, decided_at=now
        )
    assert Decision.objects.get(inspection=waiting).outcome == "accept"


def test_imported_items_arrive_decided_and_final(make_line, ana):
    line = make_line(name="press-4")
    station = services.import_station(line)
    assert not station.is_enabled
    item = decisions.ImportedItem(
        external_id="import:abc",
        image_name="ab/abc.png",
        sha256="c" * 64,
        image_format="PNG",
        width=8,
        height=8,
        outcome="reject",
    )
    [inspection] = decisions.record_imported_inspections(
        station=station,
        items=[item],
        inspector=ana,
        routing_policy=services.routing_policy_snapshot(line),
    )
    decision = Decision.objects.final().get(inspection=inspection)
    assert (decision.outcome, decision.decided_by, decision.inspector) == ("reject", "human", ana)
    assert Inspection.objects.get(pk=inspection.pk).automation_level == "human_only"
