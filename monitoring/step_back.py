"""Stepping back by itself: what an opened alert does to its line's level and audit rate.

- An alert that says the model is wrong more often (disagreement or miss-rate drift, escapes:
  alert_rules.MODEL_WRONG) lowers the level one step (full -> partial -> assist -> shadow ->
  human_only), never below the floor the supervisor set, when stepping back is on.
- A data-drift alert raises the audit rate to the configured share (never lowers it), so
  more of the model's decisions are checked while the images look new; it lowers the level
  only where the supervisor opted in.
Never raises a level. Changes go through inspection.services, which writes the audit log with
the alert as the reason.
"""

from inspection.console import LEVEL_ORDER
from inspection.models import Line
from inspection.services import set_line_level, set_line_settings
from monitoring.alert_rules import MODEL_WRONG
from monitoring.line_settings import settings_for
from monitoring.models import Alert, AlertMetric

CHANGED_BY = "monitoring"


def lower_level(level: str, floor: str) -> str | None:
    """One step below `level`, not below `floor`; None when there is no step to take. Pure."""
    if level not in LEVEL_ORDER or floor not in LEVEL_ORDER:
        return None
    rank = LEVEL_ORDER.index(level)
    if rank == 0 or rank <= LEVEL_ORDER.index(floor):
        return None
    return LEVEL_ORDER[rank - 1]


def _reason(alert: Alert) -> str:
    return f"alert #{alert.pk}: {alert.message}"


def on_alert_opened(alert: Alert) -> list[str]:
    """Apply the line's step-back configuration to a newly opened alert, in its transaction.
    Returns what changed ("automation_level", "audit_fraction")."""
    config = settings_for(alert.line)
    line = Line.objects.get(pk=alert.line_id)
    changed = []
    lowers = (alert.metric in MODEL_WRONG and config.step_back_enabled) or (
        alert.metric == AlertMetric.DATA_DRIFT and config.drift_lowers_level
    )
    if alert.metric == AlertMetric.DATA_DRIFT and line.audit_fraction < config.drift_audit_fraction:
        line = set_line_settings(
            line=line,
            changed_by=CHANGED_BY,
            reason=_reason(alert),
            audit_fraction=config.drift_audit_fraction,
        )
        changed.append("audit_fraction")
    if lowers:
        target = lower_level(line.automation_level, config.step_back_floor)
        if target is not None:
            set_line_level(line=line, level=target, changed_by=CHANGED_BY, reason=_reason(alert))
            changed.append("automation_level")
    return changed
