"""The canary's gate: the challenger judged on its human-checked decisions against the active
model's on the same rollout (issue 12, point 3, first part).

- Breach, checked every minute (`check_canaries`): for the escape rate or the false-reject rate,
  Fisher's exact test (one-sided, monitoring.concept.higher_than) says the challenger's count
  is higher than the active model's with p below BREACH_ALPHA. The canary is then rolled back to
  0% at once (inspection.rollouts.end_rollout, which writes the line's audit log with the
  figures as its reason).
- Ready to advance (`ready_to_advance`, shown in the report): at its current step the challenger
  has at least MIN_CHECKED human-checked items and, for both rates, its Wilson 95% upper bound is
  at most the active model's rate plus MARGIN. Advancing stays a supervisor's action for now.
"""

import logging

from inspection.models import Rollout, RolloutMode, RolloutState
from inspection.rollouts import end_rollout
from monitoring.challenger_report import rollout_report
from monitoring.concept import Rate, higher_than

logger = logging.getLogger(__name__)

BREACH_ALPHA = 0.01
MIN_CHECKED = 100
MARGIN = 0.02
RATES = ("escape", "false_reject")
GATE = "monitoring"  # who the audit log names for a rollback the gate made


def _rate(figures: dict, name: str) -> Rate:
    return Rate(figures[name]["count"], figures[name]["n"])


def breach(report: dict, *, alpha: float = BREACH_ALPHA) -> str | None:
    """Why the challenger is worse than the active model, or None. Pure."""
    for name in RATES:
        ours, theirs = _rate(report["challenger"], name), _rate(report["active"], name)
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
    report: dict, *, min_checked: int = MIN_CHECKED, margin: float = MARGIN
) -> tuple[bool, str]:
    """Whether the report (of the current step) allows the next step, and why not. Pure."""
    checked = report["challenger"]["checked"]
    if checked < min_checked:
        return False, f"{checked} of {min_checked} human-checked items at this step"
    for name in RATES:
        theirs = _rate(report["active"], name).rate or 0.0
        upper = report["challenger"][name]["high_pct"] / 100
        if upper > theirs + margin:
            return False, (
                f"{name.replace('_', '-')} rate up to {upper:.1%} against the active model's "
                f"{theirs:.1%} + {margin:.0%}"
            )
    return True, "ready"


def check_canaries() -> list[dict]:
    """Roll back every running canary in breach; what was done, for the task's result. A
    rollout whose check fails is logged and skipped, so one never stops the others."""
    actions = []
    running = Rollout.objects.filter(state=RolloutState.RUNNING, mode=RolloutMode.CANARY)
    for rollout in running.order_by("pk"):
        try:
            reason = breach(rollout_report(rollout))
            if reason is not None:
                end_rollout(
                    rollout=rollout, state=RolloutState.ROLLED_BACK, changed_by=GATE, reason=reason
                )
                actions.append({"rollout": rollout.pk, "rolled_back": reason})
        except Exception:
            logger.exception("the canary check of rollout %s failed", rollout.pk)
    return actions
