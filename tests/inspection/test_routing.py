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


# Audits and blind samples: the unbiased evidence of every level that runs a model ----------


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (0.0, Route("accept", "audit")),
        (0.2, Route("accept", "audit")),  # the model's decision stands; a human audits it
        (0.5, Route(None, "blind", False)),  # the unsure band: decided by a human, model hidden
        (0.8, Route("reject", "audit")),
        (1.0, Route("reject", "audit")),
    ],
)
def test_partial_audits_its_decisions_and_sends_blind_samples_of_the_unsure_band(p, expected):
    assert route_with_model(policy("partial", audit=1.0), p, audit_key="k") == expected


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_assist_sends_a_blind_sample_without_the_model(p):
    assert route_with_model(policy("assist", audit=1.0), p, audit_key="k") == Route(
        None, "blind", False
    )


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_shadow_is_blind_already_and_is_never_sampled_apart(p):
    assert route_with_model(policy("shadow", audit=1.0), p, audit_key="k") == Route(
        None, "every_item", False
    )


@pytest.mark.parametrize("level", ["shadow", "assist", "partial", "full"])
def test_no_audit_or_blind_item_shows_the_model(level):
    """Whatever the level and p, an item sampled for evidence never shows the model, and an
    item that shows the model is never counted as a sample."""
    for p in (0.0, 0.1, 0.2, 0.5, 0.8, 0.9, 1.0):
        route = route_with_model(policy(level, audit=1.0), p, audit_key="k")
        if route.review_reason in ("audit", "blind"):
            assert route.shows_model is False


@pytest.mark.parametrize("level", ["assist", "partial", "full"])
def test_samples_follow_the_audit_rate_and_the_same_items_at_every_level(level):
    """One deterministic draw per item: at 10% about a tenth of items are sampled, and an item
    sampled at one level is the one sampled at another (a retried item is treated the same)."""
    keys = [f"7:SN-{i}" for i in range(5000)]
    sampled = [
        route_with_model(policy(level, audit=0.1), 0.5, audit_key=k).review_reason
        in ("audit", "blind")
        for k in keys
    ]
    assert 0.08 < sum(sampled) / len(keys) < 0.12
    assert sampled == [is_audit_sample(k, 0.1) for k in keys]
