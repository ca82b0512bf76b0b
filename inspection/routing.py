"""The automation levels as plain functions: what happens to an item, given the model's output.

No database here, so every level and threshold edge is unit-tested directly.
"""

import hashlib
from dataclasses import dataclass

from inspection.models import AutomationLevel, FailSafeAction, Outcome, ReviewReason

MODEL_LEVELS = frozenset(
    {AutomationLevel.SHADOW, AutomationLevel.ASSIST, AutomationLevel.PARTIAL, AutomationLevel.FULL}
)


@dataclass(frozen=True)
class RoutingPolicy:
    """The rules an item is routed by, copied from its line when it arrived (not the retraining
    policy, which is ml.models.RetrainingPolicy)."""

    level: str
    accept_threshold: float
    reject_threshold: float
    fail_safe_action: str = FailSafeAction.REVIEW
    audit_fraction: float = 0.02


@dataclass(frozen=True)
class Route:
    """Where an item goes: a final outcome, a review item, or both (an audit of the model's
    decision). shows_model: whether the human sees the model's answer (never on an audit or a
    blind sample: those are the unbiased evidence)."""

    outcome: str | None
    review_reason: str | None
    shows_model: bool = False


def level_runs_model(level: str) -> bool:
    return level in MODEL_LEVELS


def route_without_model(policy: RoutingPolicy) -> Route:
    """human_only: every item goes to a human, no model is asked."""
    return Route(outcome=None, review_reason=ReviewReason.EVERY_ITEM)


def route_with_model(policy: RoutingPolicy, defect_probability: float, *, audit_key: str) -> Route:
    """Where an item goes at the policy's level, given the model's p(defect).

    Wherever the model decides (partial outside its unsure band, full), a sample at the audit
    rate also goes to a human who does not see the model; the model's decision stands. Wherever
    a human decides seeing the model (assist, partial's unsure band), the same share goes to the
    human blind instead, so each level yields unbiased agreement evidence. The sample is the
    same `is_audit_sample` draw everywhere: at a given rate, a representative slice of all items.
    """
    level, p = policy.level, defect_probability
    if level == AutomationLevel.HUMAN_ONLY:
        return route_without_model(policy)
    sampled = is_audit_sample(audit_key, policy.audit_fraction)
    if level == AutomationLevel.SHADOW:
        return Route(outcome=None, review_reason=ReviewReason.EVERY_ITEM)
    if level == AutomationLevel.ASSIST:
        if sampled:
            return Route(outcome=None, review_reason=ReviewReason.BLIND)
        return Route(outcome=None, review_reason=ReviewReason.EVERY_ITEM, shows_model=True)
    if level == AutomationLevel.PARTIAL:
        audit = ReviewReason.AUDIT if sampled else None
        if p <= policy.accept_threshold:
            return Route(outcome=Outcome.ACCEPT, review_reason=audit)
        if p >= policy.reject_threshold:
            return Route(outcome=Outcome.REJECT, review_reason=audit)
        if sampled:
            return Route(outcome=None, review_reason=ReviewReason.BLIND)
        return Route(outcome=None, review_reason=ReviewReason.UNSURE, shows_model=True)
    if level == AutomationLevel.FULL:
        outcome = model_outcome(p, policy.reject_threshold)
        return Route(outcome=outcome, review_reason=ReviewReason.AUDIT if sampled else None)
    raise ValueError(f"unknown automation level {level!r}")


def model_outcome(defect_probability: float, reject_threshold: float) -> str:
    """What the model decides alone: the full-automation rule (also what agreement compares)."""
    return Outcome.REJECT if defect_probability >= reject_threshold else Outcome.ACCEPT


def route_fail_safe(policy: RoutingPolicy) -> Route:
    if policy.fail_safe_action == FailSafeAction.REJECT:
        return Route(outcome=Outcome.REJECT, review_reason=None)
    return Route(outcome=None, review_reason=ReviewReason.FAIL_SAFE)


def is_audit_sample(audit_key: str, fraction: float) -> bool:
    """Deterministic from the item, so a retried item is audited (or not) the same way."""
    digest = hashlib.sha256(audit_key.encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return position < fraction
