"""The line's rollout page: what a supervisor sees of a challenger, and their actions on it."""

import pytest
from django.test import Client

from accounts.services import create_user
from inspection import services
from inspection.models import LineChange, ReviewItem, Rollout
from inspection.rollouts import challenger_draw, start_rollout
from labeling.services import save_annotation
from ml import services as ml_services
from ml.models import ModelVersion
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(make_line):
    line = make_line(name="press", level="full", audit_fraction=0.5)
    incumbent, challenger = seed_model_version("incumbent"), seed_model_version("challenger")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    ModelVersion.objects.filter(pk=challenger.pk).update(line=line)
    station, _ = services.create_station(line=line, name="cam")
    users = {
        role: create_user(
            username=role, role=role, line_names=[line.name], password="rollout-page-1"
        )
        for role in ("inspector", "supervisor")
    }
    return line, station, incumbent, challenger, users


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_line_without_a_challenger_says_how_one_starts(world):
    line, *_, users = world
    page = client_of(users["inspector"]).get(f"/lines/{line.pk}/rollout/").content.decode()
    assert 'id="no-rollout"' in page and "manage.py rollout press start VERSION" in page


def test_the_page_shows_both_models_side_by_side_and_why_the_next_step_waits(world):
    line, station, incumbent, challenger, users = world
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=0.5, changed_by="sv"
    )
    for number in range(40):
        serial = f"P{number}"
        ours = challenger_draw(rollout.pk, station.pk, serial) < 0.5
        item = seed_inspection(
            station, serial, probability=0.9, model_version=challenger if ours else incumbent
        )
        audit = ReviewItem.objects.filter(inspection=item).first()
        if audit is not None:
            decide_review_item(item=audit, inspector=users["inspector"], outcome="reject")
            box = {"x0": 1, "y0": 1, "x1": 9, "y1": 9, "label": "dent"}
            save_annotation(
                inspection=item, author=users["inspector"], image_label="defective", boxes=[box]
            )
    page = client_of(users["inspector"]).get(f"/lines/{line.pk}/rollout/").content.decode()
    challenger_items = sum(
        challenger_draw(rollout.pk, station.pk, f"P{n}") < 0.5 for n in range(40)
    )
    assert f"<td>Challenger: challenger</td><td>{challenger_items}</td>" in page
    assert f"<td>Active: incumbent</td><td>{40 - challenger_items}</td>" in page
    assert "Next step: <strong>decide 100% of items</strong>" in page
    assert "human-checked items at this step" in page  # the reason it waits
    assert 'id="rollout-steps"' in page and '"share": 0.5' in page
    # every audited item was labeled a dent, and both models caught every one
    assert '<table id="rollout-per-class">' in page and "<td>dent</td><td>0.0%" in page
    # an inspector sees, and has no button
    assert "Roll back" not in page
    assert (
        "Roll back"
        in client_of(users["supervisor"]).get(f"/lines/{line.pk}/rollout/").content.decode()
    )


def test_a_supervisor_rolls_back_from_the_page_and_the_audit_log_names_them(world):
    line, station, incumbent, challenger, users = world
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=0.05, changed_by="sv"
    )
    client = client_of(users["supervisor"])
    url = f"/lines/{line.pk}/rollout/act/"
    answer = client.post(url, {"action": "rollback", "reason": "wrong lot"})
    assert answer.status_code == 302 and answer["Location"] == f"/lines/{line.pk}/rollout/"
    rollout.refresh_from_db()
    assert (rollout.state, rollout.share, rollout.ended_by) == ("rolled_back", 0.0, "supervisor")
    entry = LineChange.objects.filter(line=line, field="rollout").first()
    assert (entry.changed_by, entry.reason) == ("supervisor", "wrong lot")
    # nothing runs any more: a second click is refused with the reason
    again = client.post(url, {"action": "rollback"})
    assert again.status_code == 409 and "no running rollout" in again.json()["message"]


def test_refused_actions_are_4xx_with_the_reason_and_change_nothing(world):
    line, station, incumbent, challenger, users = world
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=0.05, changed_by="sv"
    )
    client = client_of(users["supervisor"])
    url = f"/lines/{line.pk}/rollout/act/"
    not_ready = client.post(url, {"action": "advance"})
    assert not_ready.status_code == 409
    assert not_ready.json() == {
        "error": "rollout_not_ready",
        "message": "not ready for the next step: 0 of 100 human-checked items at this step",
    }
    promote = client.post(url, {"action": "promote"})
    assert promote.status_code == 409 and "through its steps" in promote.json()["message"]
    bad = client.post(url, {"action": "explode"})
    assert bad.status_code == 400 and "action must be one of" in bad.json()["message"]
    assert Rollout.objects.get(pk=rollout.pk).share == 0.05
    assert client_of(users["inspector"]).post(url, {"action": "rollback"}).status_code == 403


def test_blue_green_is_switched_both_ways_and_promoted_from_the_page(world):
    line, station, incumbent, challenger, users = world
    start_rollout(line=line, challenger=challenger, mode="blue_green", changed_by="sv")
    client = client_of(users["supervisor"])
    url = f"/lines/{line.pk}/rollout/act/"
    refused = client.post(url, {"action": "promote"})
    assert refused.status_code == 409 and "switch to it first" in refused.json()["message"]
    page = client.get(f"/lines/{line.pk}/rollout/").content.decode()
    assert "Switch to challenger" in page
    assert client.post(url, {"action": "switch"}).status_code == 302
    assert seed_inspection(station, "after-switch").serving_model_id == challenger.pk
    assert client.post(url, {"action": "switch"}).status_code == 302
    assert seed_inspection(station, "switched-back").serving_model_id is None
    client.post(url, {"action": "switch"})
    assert client.post(url, {"action": "promote"}).status_code == 302
    line.refresh_from_db()
    assert line.active_model_id == challenger.pk
    assert Rollout.objects.get(line=line).state == "promoted"
