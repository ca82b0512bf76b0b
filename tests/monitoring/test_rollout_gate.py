"""The rollout's gate: a challenger worse than the active model on what humans decided is
rolled back with an alert; a ready one takes its next step, by itself at the automatic level."""

import pytest

from inspection import services
from inspection.models import LineChange, ReviewItem, Rollout, RolloutState
from inspection.rollouts import challenger_draw, start_rollout
from ml import services as ml_services
from ml.models import ModelVersion
from monitoring.line_settings import update_line_monitoring
from monitoring.models import Alert, WebhookDelivery
from monitoring.rollout_gate import (
    RolloutNotReady,
    advance_rollout,
    breach,
    check_rollouts,
    ready_to_advance,
)
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version


def figures(model, escapes, defective, false_rejects, good, checked=None):
    def rate(count, n):
        high = 100.0 if n == 0 else 100 * min(1.0, count / n + 2 / n**0.5)  # a rough bound
        return {"count": count, "n": n, "high_pct": high}

    return {
        "model": model,
        "checked": defective + good if checked is None else checked,
        "escape": rate(escapes, defective),
        "false_reject": rate(false_rejects, good),
    }


def test_a_challenger_rejecting_good_items_the_incumbent_accepts_is_a_breach():
    report = {
        "mode": "canary",
        "active": figures("v1", 1, 20, 2, 180),
        "challenger": figures("v2", 0, 1, 8, 9),
    }
    assert "false-reject rate 8/9" in breach(report)
    same = {
        "mode": "canary",
        "active": figures("v1", 1, 20, 2, 180),
        "challenger": figures("v2", 0, 2, 0, 9),
    }
    assert breach(same) is None


def test_the_next_step_needs_enough_checked_items_and_bounds_within_the_margin():
    active = figures("v1", 2, 100, 4, 900)
    few = {"mode": "canary", "active": active, "challenger": figures("v2", 0, 5, 0, 40)}
    assert ready_to_advance(few) == (False, "45 of 100 human-checked items at this step")
    enough = {
        "mode": "canary",
        "active": active,
        "challenger": figures("v2", 0, 10_000, 0, 10_000),
    }
    assert ready_to_advance(enough) == (True, "ready")


def paired(active_only, challenger_only, p, checked=200):
    return {
        "checked": checked,
        "active_only_right": active_only,
        "challenger_only_right": challenger_only,
        "mcnemar_p": p,
    }


def test_a_mirror_is_judged_item_by_item_by_mcnemar():
    both = {
        "active": figures("v1", 0, 100, 0, 100),
        "challenger": figures("v2", 0, 10_000, 0, 10_000),
    }
    worse = {"mode": "mirror", **both, "paired": paired(14, 1, 0.001)}
    assert "only the active model was right on 14, only the challenger on 1" in breach(worse)
    assert ready_to_advance(worse)[0] is False
    # fewer discordant pairs: not a breach, but not shown to be as good either
    doubtful = {"mode": "mirror", **both, "paired": paired(7, 1, 0.04)}
    assert breach(doubtful) is None
    assert ready_to_advance(doubtful)[0] is False
    better = {"mode": "mirror", **both, "paired": paired(1, 9, 0.02)}
    assert breach(better) is None and ready_to_advance(better) == (True, "ready")
    thin = {"mode": "mirror", **both, "paired": paired(0, 0, 1.0, checked=60)}
    assert ready_to_advance(thin) == (False, "60 of 100 human-checked items at this step")


def play_until_rolled_back(
    station, rollout, incumbent, challenger, ines, *, items, defective, sees, prefix, every=1
) -> int:
    """Post up to `items` items, item n defective when defective(n); the model that answers it
    calls it defective when sees(n, by_challenger). An inspector decides each audit with the
    truth; the gate checks every `every` items. Returns the items the challenger decided."""
    decided_by_challenger = 0
    for number in range(items):
        serial = f"{prefix}{number}"
        by_challenger = challenger_draw(rollout.pk, station.pk, serial) < rollout.share
        item = seed_inspection(
            station,
            serial,
            probability=0.95 if sees(number, by_challenger) else 0.05,
            model_version=challenger if by_challenger else incumbent,
        )
        assert item.serving_model_id == (challenger.pk if by_challenger else None)
        decided_by_challenger += by_challenger
        audit = ReviewItem.objects.filter(inspection=item).first()
        if audit is not None:
            outcome = "reject" if defective(number) else "accept"
            decide_review_item(item=audit, inspector=ines, outcome=outcome)
        if number % every == every - 1 and check_rollouts():
            break
    rollout.refresh_from_db()
    return decided_by_challenger


@pytest.mark.django_db
def test_a_canary_that_rejects_good_items_is_rolled_back_after_its_first_audits(
    make_line, inspector
):
    line = make_line(name="press", level="full", audit_fraction=0.2)
    incumbent, flipped = seed_model_version("incumbent"), seed_model_version("flipped")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")
    update_line_monitoring(
        line=line, changed_by="sam", webhook_url="http://127.0.0.1:9/hook", webhook_secret="s" * 20
    )
    rollout = start_rollout(
        line=line, challenger=flipped, mode="canary", share=0.25, changed_by="sv"
    )
    # every item is good; the flipped model calls them defective, the incumbent accepts them
    decided_by_challenger = play_until_rolled_back(
        station, rollout, incumbent, flipped, inspector(line), items=400, prefix="G",
        defective=lambda n: False, sees=lambda n, by_challenger: by_challenger,
    )  # fmt: skip
    print(f"\nthe flipped challenger decided {decided_by_challenger} items before the rollback")
    assert rollout.state == RolloutState.ROLLED_BACK and rollout.share == 0.0
    assert decided_by_challenger <= 50
    entry = LineChange.objects.filter(line=line, field="rollout").first()
    assert entry.changed_by == "monitoring" and "false-reject" in entry.reason
    # and the line's people hear of it at once, on the page and through their webhook
    alert = Alert.objects.get(line=line, metric="rollout_rolled_back")
    assert alert.state == "open" and "flipped rolled back" in alert.message
    assert WebhookDelivery.objects.filter(alert=alert).count() == 1


@pytest.mark.django_db
def test_a_challenger_blind_to_one_defect_class_is_rolled_back_on_its_escapes(make_line, inspector):
    """Half the items defective, one in four of those a scratch, which the challenger alone
    accepts; the rest it judges as well as the incumbent does."""
    line = make_line(name="press", level="full", audit_fraction=0.2)
    incumbent, blind = seed_model_version("incumbent"), seed_model_version("blind")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")
    rollout = start_rollout(line=line, challenger=blind, mode="canary", share=0.25, changed_by="sv")
    decided_by_challenger = play_until_rolled_back(
        station, rollout, incumbent, blind, inspector(line), items=3000, prefix="P", every=10,
        defective=lambda n: n % 2 == 0,
        # a scratch (one defective item in four) is what the blind challenger alone misses
        sees=lambda n, by_challenger: n % 2 == 0 and not (by_challenger and n % 8 == 0),
    )  # fmt: skip
    print(f"\nthe scratch-blind challenger decided {decided_by_challenger} items, then rolled back")
    assert rollout.state == RolloutState.ROLLED_BACK
    assert "escape rate" in rollout.ended_reason
    assert decided_by_challenger < 750  # caught well before the 3,000 items ran out


@pytest.fixture
def mirrored(make_line, inspector):
    """A shadow-level line (every item decided by an inspector) with a mirror challenger that
    is right wherever the incumbent is."""
    line = make_line(name="press", level="shadow")
    incumbent, challenger = seed_model_version("incumbent"), seed_model_version("challenger")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    ModelVersion.objects.filter(pk=challenger.pk).update(line=line)  # a candidate of the line
    station, _ = services.create_station(line=line, name="cam")
    rollout = start_rollout(line=line, challenger=challenger, mode="mirror", changed_by="sv")
    ines = inspector(line)

    def play(count, prefix, share=0.0):
        from inspection.predictions import record_prediction
        from ml.engine.types import ModelOutput

        for number in range(count):
            serial = f"{prefix}{number}"
            defective = number % 2 == 0
            p = 0.95 if defective else 0.05
            by_challenger = challenger_draw(rollout.pk, station.pk, serial) < share
            item = seed_inspection(
                station, serial, probability=p, model_version=challenger if by_challenger
                else incumbent,
            )  # fmt: skip
            if share == 0.0:
                record_prediction(
                    inspection=item, model_version=challenger, output=ModelOutput(p, ()),
                    latency_ms=4.0, role="challenger",
                )  # fmt: skip
            review = ReviewItem.objects.filter(inspection=item).first()
            if review is not None:
                decide_review_item(
                    item=review, inspector=ines, outcome="reject" if defective else "accept"
                )

    return line, rollout, play


@pytest.mark.django_db
def test_a_supervisor_steps_a_rollout_only_when_the_gate_allows_it(mirrored, settings):
    line, rollout, play = mirrored
    play(40, "A")
    with pytest.raises(RolloutNotReady, match="40 of 100 human-checked items at this step"):
        advance_rollout(rollout=rollout, changed_by="sam")
    play(60, "B")
    # no miss in 50 defective items still leaves an escape rate up to 7.1% possible
    with pytest.raises(RolloutNotReady, match=r"escape rate up to 7.1% against .* 0.0% \+ 2%"):
        advance_rollout(rollout=rollout, changed_by="sam")
    settings.LOUPE_ROLLOUT_MARGIN = 0.1
    rollout = advance_rollout(rollout=rollout, changed_by="sam")
    assert (rollout.mode, rollout.share) == ("canary", 0.05)
    # the new step counts its own items: the mirror's 100 are not evidence for a canary
    with pytest.raises(RolloutNotReady, match="0 of 100"):
        advance_rollout(rollout=rollout, changed_by="sam")
    steps = [
        entry.new_value for entry in LineChange.objects.filter(line=line, field="rollout").reverse()
    ]
    assert steps == ["mirror challenger 0 (running)", "canary challenger 0.05 (running)"]


@pytest.mark.django_db
def test_at_the_automatic_level_the_gate_steps_a_good_challenger_on_to_active(mirrored, settings):
    line, rollout, play = mirrored
    # a short walk: 20 checked items a step, and a margin 0 misses of 10 are within
    settings.LOUPE_ROLLOUT_MIN_CHECKED, settings.LOUPE_ROLLOUT_MARGIN = 20, 0.3
    ml_services.set_retraining_policy(line=line, changed_by="sam", mlops_level="automatic")
    play(20, "M")
    assert check_rollouts() == [{"rollout": rollout.pk, "advanced": "canary 0.05"}]
    shares = []
    for step in range(6):
        rollout.refresh_from_db()
        if rollout.state != RolloutState.RUNNING:
            break
        # enough items at this step for 20 of them to be the challenger's
        play(int(20 / rollout.share * 1.3) + 10, f"S{step}-", share=rollout.share)
        shares.append(rollout.share)
        check_rollouts()
    rollout.refresh_from_db()
    line.refresh_from_db()
    assert shares == [0.05, 0.25, 0.5, 1.0]
    assert rollout.state == RolloutState.PROMOTED
    assert line.active_model.name == "challenger"
    changes = LineChange.objects.filter(line=line, field="rollout", changed_by="monitoring")
    assert changes.count() == 5  # four steps and the promotion


@pytest.mark.django_db
def test_below_the_automatic_level_the_gate_steps_nothing(mirrored):
    line, rollout, play = mirrored
    ml_services.set_retraining_policy(line=line, changed_by="sam", mlops_level="assisted")
    play(100, "M")
    assert check_rollouts() == []
    assert Rollout.objects.get(pk=rollout.pk).mode == "mirror"


@pytest.mark.django_db
def test_at_a_low_line_audit_the_incumbents_week_before_makes_the_comparison(make_line, inspector):
    """At a 2% audit the incumbent's items during a 5% canary hold almost no checked good item,
    so the gate compares with its checked items of the days before the rollout too."""
    line = make_line(name="press", level="full", audit_fraction=0.02)
    incumbent, flipped = seed_model_version("incumbent"), seed_model_version("flipped")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")
    ines = inspector(line)

    def audit(item, defective):
        review = ReviewItem.objects.filter(inspection=item).first()
        if review is not None:
            outcome = "reject" if defective else "accept"
            decide_review_item(item=review, inspector=ines, outcome=outcome)
        return review is not None

    # yesterday's production: the incumbent right on every item, 2% audited
    checked = sum(
        audit(seed_inspection(station, f"Y{n}", probability=0.05, model_version=incumbent), False)
        for n in range(800)
    )
    assert checked >= 8
    rollout = start_rollout(
        line=line, challenger=flipped, mode="canary", share=0.05, changed_by="sv"
    )
    decided_by_challenger = play_until_rolled_back(
        station, rollout, incumbent, flipped, ines, items=2000, prefix="G", every=10,
        defective=lambda n: False, sees=lambda n, by_challenger: by_challenger,
    )  # fmt: skip
    print(f"\nat a 2% line audit the flipped challenger decided {decided_by_challenger} items")
    assert rollout.state == RolloutState.ROLLED_BACK
    assert decided_by_challenger <= 25  # the rollout's own audits alone need about 50
