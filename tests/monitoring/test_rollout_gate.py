"""The canary's gate: a challenger worse than the active model on its audits is rolled back."""

import pytest

from inspection import services
from inspection.models import LineChange, ReviewItem, RolloutState
from inspection.rollouts import challenger_draw, start_rollout
from ml import services as ml_services
from monitoring.rollout_gate import breach, check_canaries, ready_to_advance
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
        "active": figures("v1", 1, 20, 2, 180),
        "challenger": figures("v2", 0, 1, 8, 9),
    }
    assert "false-reject rate 8/9" in breach(report)
    same = {"active": figures("v1", 1, 20, 2, 180), "challenger": figures("v2", 0, 2, 0, 9)}
    assert breach(same) is None


def test_the_next_step_needs_enough_checked_items_and_bounds_within_the_margin():
    active = figures("v1", 2, 100, 4, 900)
    few = {"active": active, "challenger": figures("v2", 0, 5, 0, 40)}
    assert ready_to_advance(few) == (False, "45 of 100 human-checked items at this step")
    enough = {"active": active, "challenger": figures("v2", 0, 10_000, 0, 10_000)}
    assert ready_to_advance(enough) == (True, "ready")


@pytest.mark.django_db
def test_a_canary_that_rejects_good_items_is_rolled_back_after_its_first_audits(
    make_line, inspector
):
    line = make_line(name="press", level="full", audit_fraction=0.2)
    incumbent, flipped = seed_model_version("incumbent"), seed_model_version("flipped")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")
    rollout = start_rollout(
        line=line, challenger=flipped, mode="canary", share=0.25, changed_by="sv"
    )
    ines = inspector(line)
    decided_by_challenger = 0
    for number in range(400):
        serial = f"G{number}"  # every item is good
        by_challenger = challenger_draw(rollout.pk, station.pk, serial) < rollout.share
        # the flipped model calls good items defective; the incumbent accepts them
        item = seed_inspection(
            station,
            serial,
            probability=0.95 if by_challenger else 0.05,
            model_version=flipped if by_challenger else incumbent,
        )
        assert item.serving_model_id == (flipped.pk if by_challenger else None)
        decided_by_challenger += by_challenger
        audit = ReviewItem.objects.filter(inspection=item).first()
        if audit is not None:
            decide_review_item(item=audit, inspector=ines, outcome="accept")
        if check_canaries():
            break
    rollout.refresh_from_db()
    print(f"\nthe flipped challenger decided {decided_by_challenger} items before the rollback")
    assert rollout.state == RolloutState.ROLLED_BACK and rollout.share == 0.0
    assert decided_by_challenger <= 50
    entry = LineChange.objects.filter(line=line, field="rollout").first()
    assert entry.changed_by == "monitoring" and "false-reject" in entry.reason
