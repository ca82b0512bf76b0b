"""The evaluation gate's rules, on figures written by hand."""

import pytest

from ml.gate import GateRules, judge

RULES = GateRules(margin=0.02, max_class_recall_drop=0.05)


def figures(f1, recall_per_class=None, count=100):
    recall_per_class = recall_per_class or {"scratch": 0.9, "crack": 0.5}
    return {
        "count": count,
        "class_counts": {name: 20 for name in recall_per_class},
        "reject": {"threshold": 0.8, "f1": f1, "recall_per_class": recall_per_class},
    }


def evaluation(test, corrections):
    return {"test": test, "corrections": corrections}


def pair(candidate, active):
    return {"candidate": candidate, "active": active}


def test_a_candidate_better_by_the_margin_on_both_sets_passes():
    report = judge(
        evaluation(
            pair(figures(0.90, {"scratch": 0.9, "crack": 0.95}), figures(0.85)),
            pair(figures(0.80, {"scratch": 0.88, "crack": 0.9}), figures(0.40)),
        ),
        RULES,
    )
    assert report.passed
    assert {c.outcome for c in report.checks} == {"pass"}
    assert len(report.checks) == 6  # F1 and two classes, on each set


@pytest.mark.parametrize("which", ["test", "corrections"])
def test_a_gain_below_the_margin_on_either_set_waits_for_a_supervisor(which):
    sets = {
        "test": pair(figures(0.90), figures(0.85)),
        "corrections": pair(figures(0.80), figures(0.40)),
    }
    sets[which] = pair(figures(0.86), figures(0.85))
    report = judge(sets, RULES)
    assert not report.passed
    failed = [c for c in report.checks if c.outcome == "fail"]
    assert [c.name.split(":")[1].strip() for c in failed] == ["F1"]
    assert "needs at least 0.870" in failed[0].detail


def test_a_gain_of_exactly_the_margin_passes():
    report = judge(
        evaluation(pair(figures(0.87), figures(0.85)), pair(figures(0.62), figures(0.60))), RULES
    )
    assert report.passed


def test_a_class_whose_recall_drops_too_far_stops_the_promotion():
    worse_scratch = {"scratch": 0.84, "crack": 0.95}  # scratch falls by 0.06 > 0.05
    report = judge(
        evaluation(
            pair(figures(0.95, worse_scratch), figures(0.85)),
            pair(figures(0.80), figures(0.40)),
        ),
        RULES,
    )
    assert not report.passed
    failed = [c.name for c in report.checks if c.outcome == "fail"]
    assert failed == ["test split: recall of scratch"]


def test_a_class_with_too_few_images_is_shown_as_skipped_not_judged():
    candidate = figures(0.95, {"scratch": 0.0, "crack": 0.95})
    candidate["class_counts"]["scratch"] = 3
    report = judge(
        evaluation(pair(candidate, figures(0.85)), pair(figures(0.8), figures(0.4))), RULES
    )
    assert report.passed
    skipped = [c for c in report.checks if c.outcome == "skip"]
    assert [c.name for c in skipped] == ["test split: recall of scratch"]
    assert "only 3 images" in skipped[0].detail


def test_without_an_active_model_or_corrections_the_gate_does_not_promote():
    no_active = judge(evaluation(pair(figures(0.9), None), pair(figures(0.9), None)), RULES)
    assert not no_active.passed
    assert "no active model" in no_active.checks[0].detail
    no_corrections = judge(evaluation(pair(figures(0.9), figures(0.8)), None), RULES)
    assert not no_corrections.passed
    assert no_corrections.checks[-1].detail == "no images in the corrections since the active model"
