"""The escapes rule fires on a burst: more escapes than the model's own miss rate makes likely
at the audits of the window, not on a count a routine miss rate reaches every hour."""

import pytest

from monitoring import alert_rules, concept
from monitoring.alerts import evaluate_alerts
from monitoring.concept import CheckedItem, window_of
from monitoring.models import AlertMetric, AlertRule

ACCEPT, REJECT = "accept", "reject"
M = AlertMetric


def reference(accepted_good: int, missed: int, caught: int):
    """The model's reference: good items it accepted, defects it accepted (missed) and
    defects it rejected, each decided by a human who did not see the model."""
    items = (
        [CheckedItem(0.1, 0.8, ACCEPT, True, True)] * accepted_good
        + [CheckedItem(0.1, 0.8, REJECT, False, True)] * missed
        + [CheckedItem(0.95, 0.8, REJECT, True, True)] * caught
    )
    return window_of("reference", items)


def test_the_same_count_is_a_burst_at_few_audits_and_routine_at_many():
    ref = reference(100, 3, 97)  # 3 of 103 accepts defective: about 3%
    assert alert_rules.escape_burst_p(3, 10, ref) < alert_rules.ESCAPE_BURST_ALPHA
    assert alert_rules.escape_burst_p(3, 60, ref) > alert_rules.ESCAPE_BURST_ALPHA
    # more escapes at the same audits: less likely
    assert alert_rules.escape_burst_p(6, 60, ref) < alert_rules.escape_burst_p(3, 60, ref)


def test_a_reference_without_a_miss_still_expects_some_and_too_thin_a_reference_says_nothing():
    clean = reference(100, 0, 100)
    assert 0 < alert_rules.escape_burst_p(1, 100, clean) < 1
    assert alert_rules.escape_burst_p(1, 100, reference(20, 0, 10)) is None
    assert alert_rules.escape_burst_p(1, 100, None) is None


@pytest.mark.parametrize(("missed", "fires"), [(1, True), (40, False)])
def test_reported_escapes_alert_only_beyond_the_models_reference_miss_rate(
    make_line, station_with_token, seed, monkeypatch, missed, fires
):
    from accounts.services import create_user
    from inspection import escapes

    line = make_line(f"burst-{missed}", level="full", audit_fraction=0.0)
    camera, _ = station_with_token(line, "cam-b")
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line).exclude(metric=M.ESCAPES).update(enabled=False)
    AlertRule.objects.filter(line=line, metric=M.ESCAPES).update(threshold=2)
    ref = reference(100 - missed, missed, 100)
    monkeypatch.setattr(concept, "reference_window", lambda *a, **kw: ref)
    user = create_user(
        username=f"sup-{missed}", role="supervisor", line_names=[line.name], password="burst-test-1"
    )
    for n in range(2):
        seed(camera, f"b{n}", p=0.1)
        escapes.record_reported_escape(line=line, serial=f"b{n}", note="return", user=user)
    opened = evaluate_alerts()
    assert [a.metric for a in opened] == ([M.ESCAPES] if fires else [])
    if fires:
        assert "p = " in opened[0].message and opened[0].value == 2
