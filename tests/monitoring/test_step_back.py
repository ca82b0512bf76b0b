"""Stepping back by itself: an alert that says the model is wrong lowers the level one step,
with the alert in the audit log; data drift raises the audit rate and lowers the level only
where the supervisor opted in; nothing ever raises a level."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection.models import Line, LineChange
from monitoring import alert_rules, step_back
from monitoring.alerts import evaluate_alerts
from monitoring.line_settings import update_line_monitoring
from monitoring.models import Alert, AlertMetric, AlertRule

M = AlertMetric


@pytest.mark.parametrize(
    "level,floor,lowered",
    [
        ("full", "assist", "partial"),
        ("partial", "assist", "assist"),
        ("assist", "assist", None),
        ("partial", "partial", None),
        ("shadow", "partial", None),  # below the floor already: never raised to it
        ("human_only", "human_only", None),
        ("assist", "human_only", "shadow"),
    ],
)
def test_one_step_down_never_below_the_floor_never_up(level, floor, lowered):
    assert step_back.lower_level(level, floor) == lowered


def _alert(line, metric, n=1):
    rule = alert_rules.ensure_default_rules(line)[list(alert_rules.METRICS).index(metric)]
    now = timezone.now()
    return Alert.objects.create(
        rule=rule,
        line=line,
        metric=metric,
        dedup_key=f"test:{n}",
        value=1,
        threshold=1,
        message=f"{metric} seen ({n})",
        last_seen_at=now,
        opened_at=now,
    )


def _level_changes(line):
    return list(
        LineChange.objects.filter(line=line, field="automation_level")
        .order_by("pk")
        .values_list("old_value", "new_value", "changed_by", "reason")
    )


def test_disagreement_alerts_lower_full_to_partial_to_assist_and_stop_there(make_line):
    line = make_line("step-line", level="full")
    first = _alert(line, M.DISAGREEMENT_DRIFT, 1)
    assert step_back.on_alert_opened(first) == ["automation_level"]
    second = _alert(line, M.ESCAPE_RATE_DRIFT, 2)
    step_back.on_alert_opened(second)
    third = _alert(line, M.ESCAPES, 3)
    assert step_back.on_alert_opened(third) == []
    line.refresh_from_db()
    assert line.automation_level == "assist"
    assert _level_changes(line) == [
        ("full", "partial", "monitoring", f"alert #{first.pk}: {first.message}"),
        ("partial", "assist", "monitoring", f"alert #{second.pk}: {second.message}"),
    ]


def test_a_line_below_the_floor_is_never_raised(make_line):
    line = make_line("low-line", level="shadow")
    update_line_monitoring(line=line, changed_by="sam", step_back_floor="partial")
    step_back.on_alert_opened(_alert(line, M.DISAGREEMENT_DRIFT))
    line.refresh_from_db()
    assert line.automation_level == "shadow"
    assert _level_changes(line) == []


def test_stepping_back_turned_off_changes_nothing(make_line):
    line = make_line("off-line", level="full")
    update_line_monitoring(line=line, changed_by="sam", step_back_enabled=False)
    assert step_back.on_alert_opened(_alert(line, M.ESCAPES)) == []
    line.refresh_from_db()
    assert line.automation_level == "full"


def test_data_drift_raises_the_audit_rate_and_lowers_the_level_only_when_opted_in(make_line):
    line = make_line("drift-line", level="full", audit_fraction=0.02)
    first = _alert(line, M.DATA_DRIFT, 1)
    assert step_back.on_alert_opened(first) == ["audit_fraction"]
    line.refresh_from_db()
    assert (line.automation_level, line.audit_fraction) == ("full", 0.2)
    change = LineChange.objects.get(line=line, field="audit_fraction")
    assert (change.old_value, change.new_value, change.reason) == (
        "0.02",
        "0.2",
        f"alert #{first.pk}: {first.message}",
    )

    update_line_monitoring(line=line, changed_by="sam", drift_lowers_level=True)
    assert step_back.on_alert_opened(_alert(line, M.DATA_DRIFT, 2)) == ["automation_level"]
    line.refresh_from_db()
    assert (line.automation_level, line.audit_fraction) == ("partial", 0.2)


def test_a_higher_audit_rate_is_never_lowered_by_drift(make_line):
    line = make_line("audit-line", level="full", audit_fraction=0.5)
    assert step_back.on_alert_opened(_alert(line, M.DATA_DRIFT)) == []
    assert Line.objects.get(pk=line.pk).audit_fraction == 0.5


def test_an_escape_alert_from_the_evaluation_steps_the_line_back_with_the_alert_as_reason(
    make_line, station_with_token, seed
):
    from accounts.services import create_user
    from inspection import escapes

    line = make_line("escape-step", level="full", audit_fraction=0.0)
    camera, _ = station_with_token(line, "cam-s")
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line).exclude(metric=M.ESCAPES).update(enabled=False)
    AlertRule.objects.filter(line=line, metric=M.ESCAPES).update(threshold=1)
    user = create_user(
        username="sam", role="supervisor", line_names=[line.name], password="pw-12345678"
    )
    seed(camera, "x1", p=0.1)
    escapes.record_reported_escape(line=line, serial="x1", note="customer return", user=user)

    (alert,) = evaluate_alerts()
    line.refresh_from_db()
    assert line.automation_level == "partial"
    ((old, new, by, reason),) = _level_changes(line)
    assert (old, new, by) == ("full", "partial", "monitoring")
    assert reason == f"alert #{alert.pk}: 1 escape(s) found in the last 60 min"
    # the alert stays open while the escape is in the window: no second step
    assert evaluate_alerts(timezone.now() + timedelta(minutes=1)) == []
    line.refresh_from_db()
    assert line.automation_level == "partial"
