"""Alerts: evaluating each line's rules, and a person acknowledging and resolving them.

The only writer of Alert and MuteWindow. `evaluate_alerts` runs every minute on the datasets
queue (monitoring.tasks, loupe.periodic) and may be called in-process (a demo command): for
each line it measures every enabled rule (monitoring.alert_rules) and
- opens an alert when the condition holds and none is unresolved for that rule and station
  (a partial unique index keeps it one however many evaluations race), unless a mute window
  of the line covers now;
- updates an unresolved alert's latest value while the condition lasts;
- resolves it (by "monitoring") once the condition clears; a figure too thin to judge leaves
  it as it is.
Every state change writes the line's audit log (inspection.services.log_line_event) and a
webhook delivery (monitoring.webhooks) in the same transaction; an opened alert that says the
model is wrong steps the line back (monitoring.step_back).
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inspection.models import Line
from inspection.selectors import visible_lines
from inspection.services import log_line_event
from loupe.common.errors import InvalidInput, LoupeError
from monitoring import alert_rules, step_back, webhooks
from monitoring.alert_rules import Finding
from monitoring.line_settings import set_reference_since
from monitoring.models import Alert, AlertEvent, AlertMetric, AlertRule, AlertState, MuteWindow

logger = logging.getLogger(__name__)
SYSTEM = "monitoring"
DRIFT_METRICS = (
    AlertMetric.DATA_DRIFT,
    AlertMetric.DISAGREEMENT_DRIFT,
    AlertMetric.ESCAPE_RATE_DRIFT,
)
MAX_MUTE = timedelta(days=7)


class AlertStateConflict(LoupeError):
    """The alert is already past that state (resolved, or acknowledged twice)."""

    status_code = 409
    code = "alert_state_conflict"


def _key(rule: AlertRule, station_id: int | None) -> str:
    return f"{rule.pk}:{station_id or '-'}"


def unresolved_alerts() -> QuerySet[Alert]:
    return Alert.objects.exclude(state=AlertState.RESOLVED)


def is_muted(line: Line, now: datetime) -> bool:
    return MuteWindow.objects.filter(line=line, start__lte=now, end__gt=now).exists()


def _log(alert: Alert, old: str, new: str, by: str, reason: str = "") -> None:
    log_line_event(
        line=alert.line,
        field="alert",
        old=f"#{alert.pk} {old}" if old else "",
        new=f"#{alert.pk} {new}: {alert.get_metric_display()}",
        changed_by=by,
        reason=reason or alert.message,
    )


def _open(rule: AlertRule, line: Line, finding: Finding, now: datetime) -> Alert | None:
    """Open the alert, or None when an unresolved one for the same key exists already."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule,
                line=line,
                station=finding.station,
                metric=rule.metric,
                dedup_key=_key(rule, finding.station.pk if finding.station else None),
                value=finding.value or 0.0,
                threshold=rule.threshold,
                message=finding.message,
                last_value=finding.value,
                last_seen_at=now,
                opened_at=now,
            )
            _log(alert, "", AlertState.OPEN, SYSTEM)
            webhooks.record_event(alert, AlertEvent.OPENED)
            step_back.on_alert_opened(alert)
    except IntegrityError:  # another evaluation opened it meanwhile
        return None
    return alert


@transaction.atomic
def _resolve(alert: Alert, *, by: str, reason: str, now: datetime) -> bool:
    won = (
        unresolved_alerts()
        .filter(pk=alert.pk)
        .update(state=AlertState.RESOLVED, resolved_at=now, resolved_by=by)
    )
    if won != 1:
        return False
    old = alert.state
    alert.refresh_from_db()
    _log(alert, old, AlertState.RESOLVED, by, reason)
    webhooks.record_event(alert, AlertEvent.RESOLVED)
    return True


def evaluate_line(line: Line, now: datetime) -> list[Alert]:
    """Evaluate one line's rules at `now`; the alerts it opened."""
    muted = is_muted(line, now)
    unresolved = {a.dedup_key: a for a in unresolved_alerts().filter(line=line)}
    opened = []
    for rule in alert_rules.ensure_default_rules(line):
        if not rule.enabled:
            for alert in [a for a in unresolved.values() if a.rule_id == rule.pk]:
                _resolve(alert, by=SYSTEM, reason="its rule was disabled", now=now)
            continue
        for finding in alert_rules.measure(rule, line, now):
            alert = unresolved.get(_key(rule, finding.station.pk if finding.station else None))
            if finding.firing is None:
                continue
            if alert is not None and finding.firing:
                Alert.objects.filter(pk=alert.pk).update(last_value=finding.value, last_seen_at=now)
            elif alert is not None:
                _resolve(alert, by=SYSTEM, reason=f"cleared: {finding.message}", now=now)
            elif finding.firing and not muted:
                new = _open(rule, line, finding, now)
                if new is not None:
                    opened.append(new)
    return opened


def evaluate_alerts(now: datetime | None = None) -> list[Alert]:
    """Evaluate every line's rules; the alerts newly opened. Safe to repeat and to run
    concurrently: an open alert is never opened twice. A line whose evaluation fails is
    logged and skipped, so one line's fault never silences the others."""
    now = now or timezone.now()
    opened = []
    for line in Line.objects.order_by("pk"):
        try:
            opened.extend(evaluate_line(line, now))
        except Exception:
            logger.exception("alert evaluation of line %s failed", line.name)
    return opened


# A person's actions ------------------------------------------------------------------------


@transaction.atomic
def acknowledge_alert(*, alert: Alert, user: str, now: datetime | None = None) -> Alert:
    """Someone is on it. Raises AlertStateConflict when it is not open any more."""
    now = now or timezone.now()
    won = Alert.objects.filter(pk=alert.pk, state=AlertState.OPEN).update(
        state=AlertState.ACKNOWLEDGED, acknowledged_at=now, acknowledged_by=user
    )
    if won != 1:
        raise AlertStateConflict(f"alert #{alert.pk} is not open any more")
    alert.refresh_from_db()
    _log(alert, AlertState.OPEN, AlertState.ACKNOWLEDGED, user, "acknowledged")
    webhooks.record_event(alert, AlertEvent.ACKNOWLEDGED)
    return alert


def resolve_alert(*, alert: Alert, user: str, now: datetime | None = None) -> Alert:
    """A person resolves it (open or acknowledged). Raises AlertStateConflict when it was
    resolved already. If the condition still holds, the next evaluation opens a new one."""
    if not _resolve(alert, by=user, reason="resolved by hand", now=now or timezone.now()):
        raise AlertStateConflict(f"alert #{alert.pk} is resolved already")
    alert.refresh_from_db()
    return alert


@transaction.atomic
def add_mute_window(
    *, line: Line, start: datetime, end: datetime, reason: str, user: str
) -> MuteWindow:
    """No alert of the line opens in [start, end). Raises InvalidInput on an empty reason, an
    end not after the start or already past, or a window over 7 days."""
    if not reason.strip():
        raise InvalidInput("say why the line is muted (a changeover, maintenance...)")
    if end <= start:
        raise InvalidInput("a mute window must end after it starts")
    if end <= timezone.now():
        raise InvalidInput("that mute window is already over")
    if end - start > MAX_MUTE:
        raise InvalidInput("a mute window lasts at most 7 days")
    mute = MuteWindow.objects.create(
        line=line, start=start, end=end, reason=reason.strip(), created_by=user
    )
    log_line_event(
        line=line,
        field="mute_window",
        old="",
        new=f"{start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC",
        changed_by=user,
        reason=mute.reason,
    )
    return mute


@transaction.atomic
def end_mute_window(*, mute: MuteWindow, user: str, now: datetime | None = None) -> MuteWindow:
    """End a mute window now (one not started yet is cut to nothing). Safe to repeat."""
    now = now or timezone.now()
    if mute.end <= now:
        return mute
    mute.end = max(now, mute.start + timedelta(microseconds=1))
    mute.save(update_fields=["end"])
    log_line_event(
        line=mute.line,
        field="mute_window",
        old=f"until {mute.end:%Y-%m-%d %H:%M}",
        new="ended",
        changed_by=user,
        reason=mute.reason,
    )
    return mute


@transaction.atomic
def reset_references(
    *, line: Line, user: str, reason: str, now: datetime | None = None
) -> list[Alert]:
    """The reference reset for a planned changeover: drift windows and the concept-drift
    reference start over from now, and the line's drift alerts are resolved (what they said
    was measured against the old reference). Returns those alerts. Logged."""
    if not reason.strip():
        raise InvalidInput("say why the references start over (which changeover)")
    now = now or timezone.now()
    set_reference_since(line=line, changed_by=user, reason=reason.strip(), now=now)
    resolved = []
    for alert in unresolved_alerts().filter(line=line, metric__in=DRIFT_METRICS):
        if _resolve(alert, by=user, reason="reference reset", now=now):
            resolved.append(alert)
    return resolved


# Reads --------------------------------------------------------------------------------------


def open_alerts_for(user, line: Line | None = None) -> QuerySet[Alert]:
    """Unresolved alerts of the lines the user sees (of one line if given), newest first."""
    rows = unresolved_alerts().filter(line__in=visible_lines(user))
    if line is not None:
        rows = rows.filter(line=line)
    return rows.select_related("line", "station")


def recent_alerts(line: Line, limit: int = 20) -> QuerySet[Alert]:
    return Alert.objects.filter(line=line).select_related("station")[:limit]


def mute_windows(line: Line, now: datetime | None = None) -> QuerySet[MuteWindow]:
    """The line's current and coming mute windows."""
    return MuteWindow.objects.filter(Q(line=line) & Q(end__gt=now or timezone.now()))
