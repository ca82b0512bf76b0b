"""The evidence gate's figures and rules, without a database: Wilson bounds, and each rule at
its edge."""

import pytest

from inspection.evidence import AgreementFigures, AgreementItem, judge
from loupe.common.stats import Z_95, Z_95_ONE_SIDED, wilson_interval


def test_wilson_interval_matches_known_values():
    # 95% two-sided, the textbook example: 81 of 263 -> 0.2553 .. 0.3662
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    # one-sided 95% ends are a 90% interval's
    low, high = wilson_interval(194, 200, Z_95_ONE_SIDED)
    assert (round(low, 4), round(high, 4)) == (0.943, 0.9844)


@pytest.mark.parametrize("z", [Z_95, Z_95_ONE_SIDED])
def test_wilson_interval_edges(z):
    assert wilson_interval(0, 0, z) == (0.0, 1.0)  # nothing seen, nothing known
    low, high = wilson_interval(0, 20, z)
    assert low == 0.0 and high == pytest.approx(z * z / (20 + z * z))
    low, high = wilson_interval(20, 20, z)
    assert high == 1.0 and low == pytest.approx(20 / (20 + z * z))


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (1, 0)])
def test_wilson_interval_refuses_impossible_counts(k, n):
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(k, n)


def items(agree_accept=0, agree_reject=0, missed=0, false_reject=0):
    """Items by kind: the model and the human agree on an accept or a reject; the human
    rejected what the model would have accepted (a miss); or the other way round."""
    return (
        [AgreementItem(0.05, "accept", True)] * agree_accept
        + [AgreementItem(0.95, "reject", True)] * agree_reject
        + [AgreementItem(0.10, "reject", False)] * missed
        + [AgreementItem(0.90, "accept", False)] * false_reject
    )


def test_figures_count_agreement_and_misses_among_defective_items():
    figures = AgreementFigures.of(items(agree_accept=10, agree_reject=4, missed=2, false_reject=1))
    assert figures == AgreementFigures(items=17, agreeing=14, defective=6, missed=2)
    assert (figures.agreement, figures.miss_rate) == (14 / 17, 2 / 6)
    empty = AgreementFigures.of([])
    assert (empty.agreement, empty.miss_rate, empty.miss_bounds) == (None, None, (0.0, 1.0))


def verdict(figures, total=None, minimum=0, target=0.95, limit=0.25):
    result = judge(
        figures=figures,
        total=figures.items if total is None else total,
        minimum=minimum,
        agreement_target=target,
        escape_rate_limit=limit,
    )
    return {rule.name: rule.passed for rule in result.rules}, result


def test_a_realistic_line_at_97_percent_can_be_raised_with_the_defaults():
    # 400 unbiased items, 97% agreement, 20% defective (80), 5 missed, 7 false rejects
    figures = AgreementFigures.of(
        items(agree_accept=313, agree_reject=75, missed=5, false_reject=7)
    )
    assert (figures.items, figures.agreement, figures.defective) == (400, 0.97, 80)
    passed, result = verdict(figures, minimum=200)
    assert passed == {"minimum": True, "agreement": True, "escapes": True}
    assert result.passed


def test_at_200_items_97_percent_is_not_yet_enough_for_a_95_percent_bound():
    figures = AgreementFigures.of(
        items(agree_accept=154, agree_reject=40, missed=3, false_reject=3)
    )
    assert figures.agreement == 0.97
    passed, result = verdict(figures, minimum=200)
    assert passed == {"minimum": True, "agreement": False, "escapes": True}
    assert result.failed[0].has == "94.3% (194 of 200 agree)"


def test_a_low_defect_rate_hides_misses_from_agreement_but_not_from_the_escape_rule():
    # 2% defective and every defect missed: 98% agreement clears the agreement bound
    figures = AgreementFigures.of(items(agree_accept=392, missed=8))
    passed, result = verdict(figures, minimum=200)
    assert passed == {"minimum": True, "agreement": True, "escapes": False}
    assert result.failed[0].has == "100.0% (8 of 8 defective items missed)"


def test_minimum_edge():
    figures = AgreementFigures.of(items(agree_accept=300, agree_reject=100))
    assert verdict(figures, total=199, minimum=200)[0]["minimum"] is False
    assert verdict(figures, total=200, minimum=200)[0]["minimum"] is True


def test_agreement_edge_is_inclusive():
    figures = AgreementFigures.of(
        items(agree_accept=180, agree_reject=16, missed=1, false_reject=3)
    )
    low = figures.agreement_bounds[0]
    assert verdict(figures, target=low)[0]["agreement"] is True
    assert verdict(figures, target=low + 1e-9)[0]["agreement"] is False


def test_no_item_never_passes_the_agreement_rule():
    passed, result = verdict(AgreementFigures.of([]), target=0.0)
    assert passed["agreement"] is False
    assert result.rules[1].has == "no unbiased item yet"


def test_escape_edge_is_inclusive():
    figures = AgreementFigures.of(items(agree_accept=300, agree_reject=35, missed=5))
    high = figures.miss_bounds[1]
    assert round(high, 4) == 0.2353  # 5 of 40 defective items missed
    assert verdict(figures, limit=high)[0]["escapes"] is True
    assert verdict(figures, limit=high - 1e-9)[0]["escapes"] is False
    six = AgreementFigures.of(items(agree_accept=300, agree_reject=34, missed=6))
    assert verdict(six)[0]["escapes"] is False  # 26.5% > the default 25%


@pytest.mark.parametrize(("defective", "passes"), [(8, False), (9, True)])
def test_the_escape_rule_needs_defects_seen_caught(defective, passes):
    """With no miss, the upper bound falls only as defective items are seen: 9 clear 25%."""
    figures = AgreementFigures.of(items(agree_accept=300, agree_reject=defective))
    assert verdict(figures)[0]["escapes"] is passes


def test_a_line_without_defective_items_has_an_unknown_miss_rate():
    figures = AgreementFigures.of(items(agree_accept=500))
    passed, result = verdict(figures, minimum=200)
    assert passed["escapes"] is False
    assert "no defective item among them" in result.failed[0].has
