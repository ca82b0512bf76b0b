"""The automation levels' rules, every level and every threshold edge, without a database."""

import pytest

from inspection.routing import (
    Route,
    RoutingPolicy,
    is_audit_sample,
    level_runs_model,
    route_fail_safe,
    route_with_model,
    route_without_model,
)


def policy(level, accept=0.2, reject=0.8, fail_safe="review", audit=0.0):
    return RoutingPolicy(level, accept, reject, fail_safe, audit)


def test_human_only_never_runs_the_model_and_reviews_every_item():
    assert level_runs_model("human_only") is False
    assert route_without_model(policy("human_only")) == Route(None, "every_item", False)


@pytest.mark.parametrize("level", ["shadow", "assist", "partial", "full"])
def test_every_other_level_runs_the_model(level):
    assert level_runs_model(level) is True


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_shadow_sends_every_item_to_review_and_hides_the_model(p):
    assert route_with_model(policy("shadow"), p, audit_key="k") == Route(None, "every_item", False)


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_assist_sends_every_item_to_review_with_the_model_shown(p):
    assert route_with_model(policy("assist"), p, audit_key="k") == Route(None, "every_item", True)


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0, Route("accept", None)),
        (0.2, Route("accept", None)),  # p == accept_threshold accepts
        (0.2000001, Route(None, "unsure", True)),
        (0.5, Route(None, "unsure", True)),
        (0.7999999, Route(None, "unsure", True)),
        (0.8, Route("reject", None)),  # p == reject_threshold rejects
        (1.0, Route("reject", None)),
    ],
)
def test_partial_decides_only_outside_the_unsure_band(p, expected):
    assert route_with_model(policy("partial"), p, audit_key="k") == expected


@pytest.mark.parametrize(
    ("p", "outcome"),
    [(0.0, "accept"), (0.5, "accept"), (0.7999999, "accept"), (0.8, "reject"), (1.0, "reject")],
)
def test_full_decides_every_item_at_the_reject_threshold(p, outcome):
    assert route_with_model(policy("full"), p, audit_key="k") == Route(outcome, None)


def test_full_queues_an_audit_without_changing_the_decision():
    route = route_with_model(policy("full", audit=1.0), 0.9, audit_key="k")
    assert route == Route("reject", "audit")


def test_audit_sample_is_deterministic_and_near_the_fraction():
    keys = [f"station:{i}" for i in range(20000)]
    first = [is_audit_sample(k, 0.02) for k in keys]
    assert first == [is_audit_sample(k, 0.02) for k in keys]
    assert 0.015 < sum(first) / len(keys) < 0.025
    assert not any(is_audit_sample(k, 0.0) for k in keys[:1000])
    assert all(is_audit_sample(k, 1.0) for k in keys[:1000])


def test_fail_safe_reviews_by_default_and_can_reject_but_never_accepts():
    assert route_fail_safe(policy("full")) == Route(None, "fail_safe")
    assert route_fail_safe(policy("full", fail_safe="reject")) == Route("reject", None)
    assert route_fail_safe(policy("full", fail_safe="accept")).outcome != "accept"


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="unknown automation level"):
        route_with_model(policy("turbo"), 0.5, audit_key="k")
