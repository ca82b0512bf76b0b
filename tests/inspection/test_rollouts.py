"""Challenger rollouts: which model answers each item, chosen when it arrives and kept."""

import shutil

import pytest

from inspection import routing, services
from inspection.errors import LineRuleBroken, RolloutConflict
from inspection.models import LineChange, RolloutState
from inspection.rollouts import (
    CANARY_STEPS,
    assignment,
    challenger_draw,
    end_rollout,
    next_canary_step,
    set_rollout_share,
    start_rollout,
)
from loupe.common.errors import InvalidInput
from ml import services as ml_services
from tests.helpers import seed_inspection, seed_model_version

SERIALS = [f"SN-{i:06d}" for i in range(10_000)]


@pytest.fixture
def canary_line(db, make_line):
    """A full-automation line serving `incumbent`, with `challenger` registered beside it."""
    line = make_line(name="press", level="full", audit_fraction=0.02)
    incumbent, challenger = seed_model_version("incumbent"), seed_model_version("challenger")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")
    line.refresh_from_db()
    return line, station, incumbent, challenger


@pytest.mark.parametrize("share", CANARY_STEPS)
def test_the_draw_gives_the_challenger_its_share_of_10000_sequential_serials(share):
    for rollout_id in (1, 17, 4242):
        chosen = sum(challenger_draw(rollout_id, 3, serial) < share for serial in SERIALS)
        assert abs(chosen / len(SERIALS) - share) <= 0.01, (rollout_id, chosen)


@pytest.mark.django_db
def test_a_new_item_goes_to_the_challenger_exactly_when_its_draw_is_under_the_share(canary_line):
    line, station, incumbent, challenger = canary_line
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=0.25, changed_by="sv"
    )
    serials = SERIALS[:1000]
    chosen = [assignment(line, station, serial)["serving_model_id"] for serial in serials]
    expected = [
        challenger.pk if challenger_draw(rollout.pk, station.pk, s) < 0.25 else None
        for s in serials
    ]
    assert chosen == expected


def test_a_raised_step_keeps_every_item_the_lower_step_gave_the_challenger():
    draws = {serial: challenger_draw(17, 3, serial) for serial in SERIALS}
    for lower, higher in zip(CANARY_STEPS, CANARY_STEPS[1:], strict=False):
        at_lower = {s for s, d in draws.items() if d < lower}
        at_higher = {s for s, d in draws.items() if d < higher}
        assert at_lower < at_higher


def test_the_canary_draw_is_independent_of_the_audit_draw_and_of_earlier_rollouts():
    canary = [s for s in SERIALS if challenger_draw(17, 3, s) < 0.25]
    audited = [s for s in canary if routing.is_audit_sample(f"3:{s}", 0.2)]
    # 2,500 canary items: the audit share among them is 0.2 within about 3 standard errors
    assert abs(len(audited) / len(canary) - 0.2) < 0.025
    again = [s for s in SERIALS if challenger_draw(18, 3, s) < 0.25]
    overlap = len(set(canary) & set(again)) / len(canary)
    assert abs(overlap - 0.25) < 0.03  # a new rollout draws afresh, not the same items


@pytest.mark.django_db
def test_a_received_item_stores_its_model_and_step_and_canary_items_get_the_rollout_audit(
    canary_line,
):
    line, station, incumbent, challenger = canary_line
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=0.5, changed_by="sv"
    )
    items = [seed_inspection(station, f"P{i}") for i in range(40)]
    by_challenger = [i for i in items if i.serving_model_id == challenger.pk]
    by_incumbent = [i for i in items if i.serving_model_id is None]
    assert by_challenger and by_incumbent and len(by_challenger) + len(by_incumbent) == 40
    assert all(i.rollout_id == rollout.pk and i.rollout_share == 0.5 for i in items)
    assert {i.audit_fraction for i in by_challenger} == {0.2}
    assert {i.audit_fraction for i in by_incumbent} == {0.02}


@pytest.mark.django_db
def test_a_rolled_back_canary_gives_the_next_items_to_the_active_model(canary_line):
    line, station, incumbent, challenger = canary_line
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=1.0, changed_by="sv"
    )
    assert seed_inspection(station, "before").serving_model_id == challenger.pk
    end_rollout(
        rollout=rollout,
        state=RolloutState.ROLLED_BACK,
        changed_by="gate",
        reason="escape rate over the incumbent's",
    )
    rollout.refresh_from_db()
    assert (rollout.state, rollout.share) == (RolloutState.ROLLED_BACK, 0.0)
    after = seed_inspection(station, "after")
    assert after.serving_model_id is None and after.rollout_id is None
    with pytest.raises(RolloutConflict):
        set_rollout_share(rollout=rollout, share=0.05, changed_by="sv")


@pytest.mark.django_db
def test_steps_and_the_rollback_go_to_the_line_audit_log(canary_line):
    line, _, _, challenger = canary_line
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=0.05, changed_by="ada"
    )
    set_rollout_share(
        rollout=rollout,
        share=next_canary_step(0.05),
        changed_by="ada",
        reason="100 checked items, no worse",
    )
    end_rollout(rollout=rollout, state=RolloutState.ROLLED_BACK, changed_by="gate")
    log = list(LineChange.objects.filter(line=line, field="rollout").order_by("pk"))
    assert [entry.new_value for entry in log] == [
        "canary challenger 0.05 (running)",
        "canary challenger 0.25 (running)",
        "canary challenger 0 (rolled_back)",
    ]
    assert [entry.changed_by for entry in log] == ["ada", "ada", "gate"]
    assert log[1].reason == "100 checked items, no worse"


@pytest.mark.django_db
def test_one_running_rollout_per_line_and_the_rules_of_each_mode(canary_line):
    line, _, incumbent, challenger = canary_line
    with pytest.raises(LineRuleBroken):
        start_rollout(line=line, challenger=incumbent, mode="canary", changed_by="sv")
    with pytest.raises(InvalidInput):
        start_rollout(line=line, challenger=challenger, mode="mirror", share=0.1, changed_by="sv")
    with pytest.raises(InvalidInput):
        start_rollout(
            line=line, challenger=challenger, mode="blue_green", share=0.5, changed_by="sv"
        )
    with pytest.raises(InvalidInput):
        start_rollout(line=line, challenger=challenger, mode="sideways", changed_by="sv")
    start_rollout(line=line, challenger=challenger, mode="mirror", changed_by="sv")
    with pytest.raises(RolloutConflict):
        start_rollout(line=line, challenger=challenger, mode="canary", share=0.05, changed_by="sv")
    assert line.rollouts.count() == 1  # the refused ones stored nothing


@pytest.mark.django_db
def test_a_mirror_challenger_answers_no_item(canary_line):
    line, station, incumbent, challenger = canary_line
    rollout = start_rollout(line=line, challenger=challenger, mode="mirror", changed_by="sv")
    items = [seed_inspection(station, f"M{i}") for i in range(20)]
    assert {i.serving_model_id for i in items} == {None}
    assert {i.rollout_id for i in items} == {rollout.pk}


@pytest.mark.django_db
def test_a_blue_green_switch_applies_to_the_next_item_both_ways(canary_line):
    line, station, incumbent, challenger = canary_line
    rollout = start_rollout(line=line, challenger=challenger, mode="blue_green", changed_by="sv")
    assert seed_inspection(station, "B1").serving_model_id is None
    set_rollout_share(rollout=rollout, share=1.0, changed_by="sv")
    switched = seed_inspection(station, "B2")
    assert switched.serving_model_id == challenger.pk
    assert switched.audit_fraction == 0.02  # a switch, not a canary: the line's audit rate
    set_rollout_share(rollout=rollout, share=0.0, changed_by="sv")
    assert seed_inspection(station, "B3").serving_model_id is None


@pytest.fixture
def real_challenger(model_version, trained_artifact, settings, make_line):
    """The tiny model as the active version and a byte-different copy as the challenger."""
    copy = settings.LOUPE_MODEL_DIR / "tiny-challenger.pt"
    shutil.copy(trained_artifact, copy)
    with open(copy, "ab") as handle:
        handle.write(b"\0")  # a different hash; torch ignores bytes after the archive
    line = make_line(name="weld", level="full")
    ml_services.set_active_version(line=line, model_version=model_version, changed_by="test")
    challenger = ml_services.register_model_version(artifact=copy, name="tiny-ch", line=line)
    station, _ = services.create_station(line=line, name="cam")
    line.refresh_from_db()
    return line, station, model_version, challenger


@pytest.mark.django_db
def test_a_redelivered_task_is_decided_by_the_model_chosen_on_arrival(real_challenger):
    line, station, _, challenger = real_challenger
    rollout = start_rollout(
        line=line, challenger=challenger, mode="canary", share=1.0, changed_by="sv"
    )
    item = seed_inspection(station, "R1")  # received, its task not run yet
    # the rollout moves on before the worker takes the task
    set_rollout_share(rollout=rollout, share=0.05, changed_by="sv")
    services.predict_and_route(inspection_id=item.pk)
    services.predict_and_route(inspection_id=item.pk)  # redelivered
    item.refresh_from_db()
    assert [p.model_version_id for p in item.predictions.all()] == [challenger.pk]
    assert item.decision.model_version_id == challenger.pk
    assert item.model_version_id == challenger.pk
    assert (item.rollout_id, item.rollout_share) == (rollout.pk, 1.0)
