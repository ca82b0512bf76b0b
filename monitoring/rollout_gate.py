"""The rollout's gate: a challenger judged on what humans decided, against the active model on
the same rollout (issue 12, point 3), and the steps it lets a rollout take.

- Breach, checked every minute (`check_rollouts`), rolls the challenger back to 0% at once
  (inspection.rollouts.end_rollout, which writes the line's audit log with the figures as its
  reason) and opens the line's "challenger rolled back" alert (monitoring.alerts, so it has a
  webhook):
  - canary: for the escape rate or the false-reject rate, Fisher's exact test (one-sided,
    monitoring.concept.higher_than) says the challenger's count is higher than the active
    model's (during the rollout and in the week before it) with p below BREACH_ALPHA;
  - mirror: both models judged the same items, so McNemar's exact test on the human-checked
    ones where exactly one model was right (monitoring.challenger_report.paired_figures) says
    the active model is right more often, p below BREACH_ALPHA.
- Ready for the next step (`ready_to_advance`, on the items of the current step alone): at
  least LOUPE_ROLLOUT_MIN_CHECKED human-checked items (default 100); for both rates the
  challenger's Wilson 95% upper bound is at most the active model's rate plus
  LOUPE_ROLLOUT_MARGIN (default 0.02); for a mirror, McNemar does not say it is worse (p below
  READY_ALPHA).
- The steps (`advance_rollout`): mirror -> canary at the first step -> each canary step ->
  promoted at 1.0. A supervisor takes them on a line whose MLOps level is manual or assisted;
  at automatic, `check_rollouts` takes each one the gate allows, without a person.
"""

import logging
from datetime import datetime

from django.conf import settings
from django.utils import timezone

from inspection import rollouts
from inspection.errors import RolloutConflict
from inspection.models import Line, Rollout, RolloutMode, RolloutState
from ml import challengers
from ml.models import MlopsLevel, RetrainingPolicy
from monitoring import alerts
from monitoring.alert_rules import ROLLOUT_GATE
from monitoring.challenger_report import rollout_report
from monitoring.concept import Rate, higher_than

logger = logging.getLogger(__name__)

BREACH_ALPHA = 0.01
READY_ALPHA = 0.05
RATES = ("escape", "false_reject")
GATE = ROLLOUT_GATE  # who the audit log names for a step or rollback the gate took


class RolloutNotReady(RolloutConflict):
    """The gate does not allow the next step yet; the message says what is missing."""

    code = "rollout_not_ready"


def _rate(figures: dict, name: str) -> Rate:
    return Rate(figures[name]["count"], figures[name]["n"])


def _active_rate(report: dict, name: str) -> Rate:
    """The active model's rate during the rollout and, for a canary, in the days before it."""
    during, before = _rate(report["active"], name), report.get("active_before")
    if before is None:
        return during
    earlier = _rate(before, name)
    return Rate(during.count + earlier.count, during.n + earlier.n)


def _mcnemar_says_worse(paired: dict, alpha: float) -> bool:
    return paired["active_only_right"] > paired["challenger_only_right"] and (
        paired["mcnemar_p"] < alpha
    )


def breach(report: dict, *, alpha: float = BREACH_ALPHA) -> str | None:
    """Why the challenger is worse than the active model, or None. Pure."""
    if report["mode"] == RolloutMode.MIRROR:
        paired = report["paired"]
        if _mcnemar_says_worse(paired, alpha):
            return (
                f"mirror challenger {report['challenger']['model']}: on {paired['checked']} "
                f"human-checked items both judged, only the active model was right on "
                f"{paired['active_only_right']}, only the challenger on "
                f"{paired['challenger_only_right']} (McNemar p={paired['mcnemar_p']:.2g} < {alpha})"
            )
        return None
    for name in RATES:
        ours, theirs = _rate(report["challenger"], name), _active_rate(report, name)
        if ours.n == 0 or ours.count == 0:
            continue
        p = higher_than(ours, theirs)
        if p < alpha:
            return (
                f"challenger {report['challenger']['model']}: {name.replace('_', '-')} rate "
                f"{ours.count}/{ours.n} against the active model's {theirs.count}/{theirs.n} "
                f"(Fisher p={p:.2g} < {alpha})"
            )
    return None


def ready_to_advance(
    report: dict, *, min_checked: int | None = None, margin: float | None = None
) -> tuple[bool, str]:
    """Whether the report (of the current step) allows the next step, and why not."""
    if min_checked is None:
        min_checked = settings.LOUPE_ROLLOUT_MIN_CHECKED
    if margin is None:
        margin = settings.LOUPE_ROLLOUT_MARGIN
    mirror = report["mode"] == RolloutMode.MIRROR
    checked = report["paired"]["checked"] if mirror else report["challenger"]["checked"]
    if checked < min_checked:
        return False, f"{checked} of {min_checked} human-checked items at this step"
    if mirror and _mcnemar_says_worse(report["paired"], READY_ALPHA):
        paired = report["paired"]
        return False, (
            f"only the active model was right on {paired['active_only_right']} items, only the "
            f"challenger on {paired['challenger_only_right']} (McNemar p={paired['mcnemar_p']:.2g})"
        )
    for name in RATES:
        theirs = _active_rate(report, name).rate or 0.0
        upper = report["challenger"][name]["high_pct"] / 100
        if upper > theirs + margin:
            return False, (
                f"{name.replace('_', '-')} rate up to {upper:.1%} against the active model's "
                f"{theirs:.1%} + {margin:.0%}"
            )
    return True, "ready"


def next_step(rollout: Rollout) -> str:
    """What advancing the rollout does, in words for the page and the command."""
    if rollout.mode == RolloutMode.MIRROR:
        return f"start deciding {rollouts.CANARY_STEPS[0]:.0%} of items (canary)"
    if rollout.mode == RolloutMode.CANARY:
        step = rollouts.next_canary_step(rollout.share)
        return "promote to active model" if step is None else f"decide {step:.0%} of items"
    return "none: a blue-green rollout is switched, not stepped"


def advance_rollout(*, rollout: Rollout, changed_by: str, reason: str = "") -> Rollout:
    """Take the rollout's next step when the gate allows it (RolloutNotReady says why not):
    a mirror becomes a canary at the first step, a canary goes to its next step, a canary at
    1.0 is promoted (ml.challengers.promote_challenger)."""
    rollout = Rollout.objects.get(pk=rollout.pk)
    if rollout.state != RolloutState.RUNNING:
        raise RolloutConflict(f"the rollout is {rollout.state}, not running")
    if rollout.mode == RolloutMode.BLUE_GREEN:
        raise RolloutConflict("a blue-green rollout is switched, not stepped")
    ready, why = ready_to_advance(rollout_report(rollout, current_step_only=True))
    if not ready:
        raise RolloutNotReady(f"not ready for the next step: {why}")
    reason = reason or "the gate's figures at this step allow it"
    if rollout.mode == RolloutMode.MIRROR:
        return rollouts.begin_canary(rollout=rollout, changed_by=changed_by, reason=reason)
    step = rollouts.next_canary_step(rollout.share)
    if step is None:
        return challengers.promote_challenger(rollout=rollout, changed_by=changed_by, reason=reason)
    return rollouts.set_rollout_share(
        rollout=rollout, share=step, changed_by=changed_by, reason=reason
    )


def promote_blue_green(*, rollout: Rollout, changed_by: str, reason: str = "") -> Rollout:
    """Make a blue-green challenger that takes every item the active model. A mirror or canary
    becomes active only through its steps (advance_rollout), which the gate allows."""
    rollout = Rollout.objects.get(pk=rollout.pk)
    if rollout.mode != RolloutMode.BLUE_GREEN:
        raise RolloutConflict(f"a {rollout.mode} becomes active through its steps: advance it")
    if rollout.share != 1.0:
        raise RolloutConflict("the challenger takes no item yet: switch to it first")
    return challengers.promote_challenger(rollout=rollout, changed_by=changed_by, reason=reason)


def drives_itself(line: Line) -> bool:
    return RetrainingPolicy.objects.filter(line=line, mlops_level=MlopsLevel.AUTOMATIC).exists()


def check_rollout(rollout: Rollout, now: datetime) -> dict | None:
    """Roll the rollout back on a breach, else take its next step where the line drives its
    rollouts itself and the gate allows it; what was done, or None."""
    reason = breach(rollout_report(rollout))
    if reason is not None:
        rollouts.end_rollout(
            rollout=rollout, state=RolloutState.ROLLED_BACK, changed_by=GATE, reason=reason
        )
        alerts.evaluate_line(rollout.line, now)  # the rollback's alert, now, not in a minute
        return {"rollout": rollout.pk, "rolled_back": reason}
    if drives_itself(rollout.line):
        try:
            stepped = advance_rollout(rollout=rollout, changed_by=GATE)
        except RolloutNotReady:
            return None
        return {"rollout": rollout.pk, "advanced": f"{stepped.mode} {stepped.share:g}"}
    return None


def check_rollouts(now: datetime | None = None) -> list[dict]:
    """Every running mirror and canary, checked (check_rollout); what was done, for the
    task's result. A rollout whose check fails is logged and skipped, so one never stops the
    others."""
    now = now or timezone.now()
    actions = []
    running = Rollout.objects.filter(
        state=RolloutState.RUNNING, mode__in=(RolloutMode.CANARY, RolloutMode.MIRROR)
    ).select_related("line")
    for rollout in running.order_by("pk"):
        try:
            action = check_rollout(rollout, now)
        except Exception:
            logger.exception("the check of rollout %s failed", rollout.pk)
            continue
        if action is not None:
            actions.append(action)
    return actions
