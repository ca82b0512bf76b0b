"""Drift alerts: data drift per station from its latest checks, disagreement drift from
monitoring.concept's windows, and the reference reset that makes both start over."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection.models import Line, LineChange, ReviewItem
from monitoring import alert_rules, alerts, concept, drift
from monitoring.alerts import evaluate_alerts
from monitoring.models import (
    Alert,
    AlertMetric,
    AlertRule,
    AlertState,
    DriftCheck,
    DriftReference,
)

M = AlertMetric


def only(line, metric, **values):
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line).exclude(metric=metric).update(enabled=False)
    AlertRule.objects.filter(line=line, metric=metric).update(**values)


@pytest.fixture
def model_line(make_line, station_with_token, model):
    line = make_line("drift-alerts", level="shadow")
    Line.objects.filter(pk=line.pk).update(active_model=model)
    line.refresh_from_db()
    cameras = [station_with_token(line, f"cam-{n}")[0] for n in (1, 2)]
    return line, cameras


def _check(line, station, verdict, *, minutes_ago=1, items=200):
    reference, _ = DriftReference.objects.get_or_create(
        model_version=line.active_model,
        defaults={"items": 10, "jitter": 0.2, "data": {}, "build_seconds": 0.1},
    )
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return DriftCheck.objects.create(
        line=line,
        station=station,
        model_version=line.active_model,
        reference=reference,
        window_start=at - timedelta(minutes=5),
        window_end=at,
        last_prediction_id=1,
        items=items,
        verdict=verdict,
        data_drift=verdict == "data_drift",
        prediction_drift=False,
        results={"tests": {"embedding": {"auc": 0.91}}},
        checked_at=at,
    )


def test_data_drift_opens_one_alert_per_drifting_station(model_line):
    line, (cam1, cam2) = model_line
    only(line, M.DATA_DRIFT)
    _check(line, cam1, "ok", minutes_ago=3)
    _check(line, cam2, "ok", minutes_ago=3)
    assert evaluate_alerts() == []
    _check(line, cam1, "data_drift")
    (alert,) = evaluate_alerts()
    assert alert.station == cam1
    assert alert.message.startswith("cam-1: data drift in its last 1 check(s) (200 items")
    assert "embedding AUC 0.91" in alert.message
    assert evaluate_alerts() == []  # the same check again: still the one alert
    _check(line, cam2, "data_drift")
    (second,) = evaluate_alerts()
    assert second.station == cam2
    # a verdict older than the rule's window says nothing about now: the alert stays as it is
    assert evaluate_alerts(timezone.now() + timedelta(hours=2)) == []
    assert Alert.objects.filter(state=AlertState.OPEN).count() == 2
    _check(line, cam1, "ok")
    evaluate_alerts()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED


def test_the_reference_reset_resolves_drift_alerts_and_old_checks_no_longer_count(model_line):
    line, (cam1, _) = model_line
    only(line, M.DATA_DRIFT)
    _check(line, cam1, "data_drift")
    (alert,) = evaluate_alerts()

    resolved = alerts.reset_references(line=line, user="sam", reason="variant B from today")
    assert [a.pk for a in resolved] == [alert.pk]
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by) == (AlertState.RESOLVED, "sam")
    change = LineChange.objects.get(line=line, field="reference_since")
    assert (change.changed_by, change.reason) == ("sam", "variant B from today")
    assert evaluate_alerts() == []  # the drifted check was of the old reference
    assert not Alert.objects.filter(state=AlertState.OPEN).exists()


def test_the_reset_starts_a_stations_drift_window_over(model_line, seed):
    line, (cam1, _) = model_line
    for n in range(3):
        prediction = seed(cam1, f"w{n}", p=0.1).predictions.get()
        prediction.input_stats = {"brightness": 0.5}
        prediction.save(update_fields=["input_stats"])
    assert len(drift.station_window(cam1, line.active_model, 200)) == 3
    alerts.reset_references(line=line, user="sam", reason="new camera")
    assert drift.station_window(cam1, line.active_model, 200) == []


def _settle():
    ReviewItem.objects.exclude(decided_at=None).update(
        decided_at=timezone.now() - timedelta(minutes=5)
    )


def test_disagreement_drift_opens_an_alert_and_the_reset_starts_its_reference_over(
    model_line, seed, decide, inspector
):
    line, (cam1, _) = model_line
    only(line, M.DISAGREEMENT_DRIFT, window=20, min_items=10)
    user = inspector(line)
    for n in range(30):
        decide(seed(cam1, f"a{n}", p=0.1), "accept", user)
    _settle()
    assert evaluate_alerts() == []
    for n in range(20):  # a new defect the model does not see
        decide(seed(cam1, f"d{n}", p=0.1), "reject", user)
    _settle()
    (alert,) = evaluate_alerts()
    window, _ = concept.latest_window(line, size=20, min_items=10)
    assert window.verdict == concept.DRIFT and "disagreement" in window.reasons
    assert alert.value == 100.0
    assert alert.message.startswith("disagreement 100.0% (95% ")

    alerts.reset_references(line=line, user="sam", reason="new spec from today")
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
    assert concept.latest_window(line, size=20, min_items=10)[0].verdict == concept.TOO_FEW
    assert evaluate_alerts() == []


def test_a_disagreement_alert_clears_only_once_the_rate_is_back_in_the_reference_range(
    model_line, monkeypatch
):
    """A window at the edge (its interval overlapping the reference's again, its rate still
    above) keeps the alert as it is: resolving and reopening would step the line back twice."""
    from inspection.models import Outcome
    from monitoring.concept import CheckedItem, judge, window_of

    line, _ = model_line
    only(line, M.DISAGREEMENT_DRIFT, window=100)

    def items(agree, disagree):
        good = CheckedItem(0.1, 0.8, Outcome.ACCEPT, True, True)
        missed = CheckedItem(0.1, 0.8, Outcome.REJECT, False, True)
        return [good] * agree + [missed] * disagree

    reference = window_of("ref", items(190, 10))  # 5%, up to about 9%
    windows = {"now": items(80, 20)}
    monkeypatch.setattr(
        concept,
        "latest_window",
        lambda line, **kw: (judge(window_of("w", windows["now"]), reference), reference),
    )
    (alert,) = evaluate_alerts()
    windows["now"] = items(88, 12)  # 12%: no longer apart from the reference, still above it
    assert judge(window_of("w", windows["now"]), reference).verdict == concept.OK
    assert evaluate_alerts() == []
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN
    windows["now"] = items(95, 5)
    evaluate_alerts()
    alert.refresh_from_db()
    assert alert.state == AlertState.RESOLVED
