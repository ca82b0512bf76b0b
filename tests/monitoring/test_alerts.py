"""Alerts: default rules per line, one alert per condition while it lasts, mute windows,
people acknowledging and resolving, every change in the line's audit log."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection.models import Inspection, LineChange, ReviewItem
from loupe.common.errors import InvalidInput
from monitoring import alert_rules, alerts
from monitoring.alerts import AlertStateConflict, evaluate_alerts
from monitoring.models import Alert, AlertMetric, AlertRule, AlertState, MuteWindow

M = AlertMetric


@pytest.fixture
def human_line(make_line, station_with_token):
    line = make_line("alert-line", level="human_only")
    camera, _ = station_with_token(line, "cam-1")
    return line, camera


def rule(line, metric, **values):
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line, metric=metric).update(**values)
    return AlertRule.objects.get(line=line, metric=metric)


def only(line, metric):
    """Leave one rule of the line enabled: each test watches its own condition."""
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line).exclude(metric=metric).update(enabled=False)


def alert_log(line):
    return list(
        LineChange.objects.filter(line=line, field="alert")
        .order_by("pk")
        .values_list("new_value", "changed_by")
    )


def test_every_line_gets_the_default_rules_once_and_an_edited_rule_is_kept(human_line):
    line, _ = human_line
    rules = alert_rules.ensure_default_rules(line)
    assert [r.metric for r in rules] == list(alert_rules.METRICS)
    AlertRule.objects.filter(line=line, metric=M.REVIEW_BACKLOG).update(threshold=7)
    again = alert_rules.ensure_default_rules(line)
    assert AlertRule.objects.filter(line=line).count() == len(alert_rules.METRICS)
    assert {r.metric: r.threshold for r in again}[M.REVIEW_BACKLOG] == 7
    assert {r.metric: r.threshold for r in again}[M.PREDICTION_QUEUE_AGE] == 120


def test_an_alert_opens_once_stays_deduplicated_and_clears_by_itself(human_line, seed, decide):
    line, camera = human_line
    only(line, M.REVIEW_BACKLOG)
    rule(line, M.REVIEW_BACKLOG, threshold=2)
    first, second = seed(camera, "b1"), seed(camera, "b2")

    opened = evaluate_alerts()
    assert [(a.metric, a.value, a.threshold) for a in opened] == [(M.REVIEW_BACKLOG, 2, 2)]
    seed(camera, "b3")
    assert evaluate_alerts() == []
    alert = Alert.objects.get()
    assert (alert.state, alert.value, alert.last_value) == (AlertState.OPEN, 2, 3)
    assert alert.message == "2 open review items"

    from accounts.services import create_user

    user = create_user(
        username="ines", role="inspector", line_names=[line.name], password="alerts-test-1"
    )
    for inspection in (first, second):
        decide(inspection, "accept", user)
    assert evaluate_alerts() == []
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by) == (AlertState.RESOLVED, "monitoring")
    assert alert_log(line) == [
        (f"#{alert.pk} open: Review backlog", "monitoring"),
        (f"#{alert.pk} resolved: Review backlog", "monitoring"),
    ]


def test_a_mute_window_keeps_alerts_from_opening_until_it_ends(human_line, seed):
    line, camera = human_line
    only(line, M.REVIEW_BACKLOG)
    rule(line, M.REVIEW_BACKLOG, threshold=1)
    seed(camera, "m1")
    now = timezone.now()
    mute = alerts.add_mute_window(
        line=line,
        start=now - timedelta(minutes=1),
        end=now + timedelta(hours=1),
        reason="changeover to variant B",
        user="sam",
    )
    assert evaluate_alerts(now) == []
    assert not Alert.objects.exists()
    assert LineChange.objects.filter(line=line, field="mute_window", changed_by="sam").exists()
    assert len(evaluate_alerts(now + timedelta(hours=1, seconds=1))) == 1

    alerts.end_mute_window(mute=mute, user="sam")
    assert MuteWindow.objects.get().end <= timezone.now()


@pytest.mark.parametrize(
    "start,end,reason",
    [(0, 60, " "), (60, 0, "x"), (-120, -60, "x"), (0, 60 * 24 * 8, "x")],
)
def test_a_bad_mute_window_is_refused_and_nothing_is_stored(human_line, start, end, reason):
    line, _ = human_line
    now = timezone.now()
    with pytest.raises(InvalidInput):
        alerts.add_mute_window(
            line=line,
            start=now + timedelta(minutes=start),
            end=now + timedelta(minutes=end),
            reason=reason,
            user="sam",
        )
    assert not MuteWindow.objects.exists()
    assert not LineChange.objects.filter(field="mute_window").exists()


def test_a_person_acknowledges_and_resolves_and_the_condition_then_opens_a_new_one(
    human_line, seed
):
    line, camera = human_line
    only(line, M.REVIEW_BACKLOG)
    rule(line, M.REVIEW_BACKLOG, threshold=1)
    seed(camera, "p1")
    (alert,) = evaluate_alerts()

    alerts.acknowledge_alert(alert=alert, user="sam")
    with pytest.raises(AlertStateConflict):
        alerts.acknowledge_alert(alert=alert, user="sam")
    assert evaluate_alerts() == []  # acknowledged is still unresolved: no second alert
    alerts.resolve_alert(alert=alert, user="sam")
    with pytest.raises(AlertStateConflict):
        alerts.resolve_alert(alert=alert, user="sam")
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by, alert.resolved_by) == ("resolved", "sam", "sam")
    assert alert_log(line) == [
        (f"#{alert.pk} open: Review backlog", "monitoring"),
        (f"#{alert.pk} acknowledged: Review backlog", "sam"),
        (f"#{alert.pk} resolved: Review backlog", "sam"),
    ]
    (again,) = evaluate_alerts()  # the backlog is still there
    assert again.pk != alert.pk


def test_an_item_waiting_too_long_for_its_prediction_raises_an_alert(
    make_line, station_with_token, seed
):
    line = make_line("queue-line", level="partial")
    camera, _ = station_with_token(line, "cam-q")
    only(line, M.PREDICTION_QUEUE_AGE)
    waiting = seed(camera, "w1")  # received, no prediction yet
    assert waiting.status == "received"
    assert evaluate_alerts() == []
    Inspection.objects.filter(pk=waiting.pk).update(
        received_at=timezone.now() - timedelta(minutes=5)
    )
    (alert,) = evaluate_alerts()
    assert alert.value >= 300 and "waited" in alert.message


def _post(camera, name, minutes_ago, seed):
    inspection = seed(camera, name)
    Inspection.objects.filter(pk=inspection.pk).update(
        received_at=timezone.now() - timedelta(minutes=minutes_ago)
    )


def test_a_station_gone_silent_while_the_line_runs_raises_an_alert_per_station(
    human_line, station_with_token, seed
):
    line, camera = human_line
    other, _ = station_with_token(line, "cam-2")
    only(line, M.STATION_SILENT)
    rule(line, M.STATION_SILENT, min_items=3)
    for n in range(3):
        _post(camera, f"s{n}", 30, seed)
        _post(other, f"o{n}", 30, seed)
    # a shift's end: both stop together, and nothing came at this time yesterday
    assert evaluate_alerts() == []
    _post(other, "o-now", 1, seed)
    (alert,) = evaluate_alerts()
    assert alert.station == camera and alert.message.startswith("cam-1 sent nothing for 30 min")
    assert evaluate_alerts() == []
    _post(camera, "s-now", 0, seed)
    evaluate_alerts()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_escapes_in_the_window_raise_an_alert(make_line, station_with_token, seed):
    from accounts.services import create_user
    from inspection import escapes

    line = make_line("escape-line", level="full", audit_fraction=0.0)
    camera, _ = station_with_token(line, "cam-e")
    only(line, M.ESCAPES)
    rule(line, M.ESCAPES, threshold=2)
    user = create_user(
        username="sam", role="supervisor", line_names=[line.name], password="alerts-test-1"
    )
    for n in range(2):
        seed(camera, f"e{n}", p=0.1)
    escapes.record_reported_escape(line=line, serial="e0", note="customer return", user=user)
    assert evaluate_alerts() == []
    escapes.record_reported_escape(line=line, serial="e1", note="customer return", user=user)
    (alert,) = evaluate_alerts()
    assert alert.metric == M.ESCAPES and alert.value == 2


def test_the_fail_safe_rate_reads_the_minute_buckets(human_line):
    from monitoring.models import Bucket

    line, _ = human_line
    only(line, M.FAIL_SAFE_RATE)
    now = timezone.now().replace(second=0, microsecond=0)
    Bucket.objects.create(
        line=line,
        width_s=60,
        start=now - timedelta(minutes=2),
        routed=40,
        fail_safes=1,
        computed_at=now,
    )
    assert evaluate_alerts() == []  # 40 items: fewer than the rule's 50
    Bucket.objects.create(
        line=line,
        width_s=60,
        start=now - timedelta(minutes=1),
        routed=60,
        fail_safes=1,
        computed_at=now,
    )
    (alert,) = evaluate_alerts()
    assert alert.value == 2.0 and alert.threshold == 1.0


def test_a_disabled_rule_opens_nothing_and_resolves_its_alert(human_line, seed):
    line, camera = human_line
    only(line, M.REVIEW_BACKLOG)
    rule(line, M.REVIEW_BACKLOG, threshold=1)
    seed(camera, "d1")
    (alert,) = evaluate_alerts()
    rule(line, M.REVIEW_BACKLOG, enabled=False)
    assert evaluate_alerts() == []
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert ReviewItem.objects.filter(state="open").count() == 1


def test_open_alerts_show_only_to_users_of_the_line(human_line, make_line, seed):
    from accounts.services import create_user

    line, camera = human_line
    only(line, M.REVIEW_BACKLOG)
    rule(line, M.REVIEW_BACKLOG, threshold=1)
    seed(camera, "v1")
    evaluate_alerts()
    make_line("elsewhere")
    ours = create_user(
        username="a", role="inspector", line_names=[line.name], password="alerts-test-1"
    )
    theirs = create_user(
        username="b", role="inspector", line_names=["elsewhere"], password="alerts-test-1"
    )
    assert alerts.open_alerts_for(ours).count() == 1
    assert alerts.open_alerts_for(theirs).count() == 0


def test_alerts_are_evaluated_and_webhooks_swept_every_minute_on_the_datasets_queue():
    from loupe.periodic import periodic_jobs

    jobs = {job.task.name: job for job in periodic_jobs()}
    for name in ("monitoring.evaluate_alerts", "monitoring.send_due_webhooks"):
        assert (jobs[name].every_s, jobs[name].queue) == (60.0, "datasets")


def test_the_charts_draw_the_fail_safe_and_backlog_lines_at_the_rules_thresholds(human_line):
    from monitoring.thresholds import thresholds_for

    line, _ = human_line
    assert thresholds_for(line, timezone.now()).review_backlog == 250
    rule(line, M.REVIEW_BACKLOG, threshold=40)
    rule(line, M.FAIL_SAFE_RATE, threshold=2.5)
    drawn = thresholds_for(line, timezone.now())
    assert (drawn.review_backlog, drawn.fail_safe_pct) == (40, 2.5)
