"""The alert pages: the count in the top bar and the list on the line page for whoever sees
the line, the buttons and forms for supervisors, a clear 400 on bad input with nothing
stored, every action in the audit log."""

import pytest
from django.test import Client

from inspection.models import LineChange
from monitoring import alert_rules
from monitoring.alerts import evaluate_alerts
from monitoring.models import AlertRule, LineMonitoring, MuteWindow

PASSWORD = "alert-pages-password-1"


@pytest.fixture
def alerted(make_line, station_with_token, seed, settings):
    from accounts.services import create_user

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast

    line = make_line("page-line", level="human_only")
    camera, _ = station_with_token(line, "cam-p")
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line, metric="review_backlog").update(threshold=1)
    seed(camera, "p1")
    (alert,) = evaluate_alerts()
    users = {
        role: create_user(username=role, role=role, line_names=[line.name], password=PASSWORD)
        for role in ("inspector", "supervisor")
    }
    make_line("other-line")
    users["stranger"] = create_user(
        username="stranger", role="supervisor", line_names=["other-line"], password=PASSWORD
    )
    return line, alert, users


def client_of(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_top_bar_counts_open_alerts_of_the_users_lines_only(alerted):
    line, alert, users = alerted
    page = client_of(users["inspector"]).get(f"/lines/{line.pk}/").content.decode()
    assert 'id="topbar-alerts"' in page and "1 alert<" in page
    assert f'id="alert-{alert.pk}"' in page and "2 open review items" not in page
    assert 'data-action="acknowledge"' not in page  # an inspector only sees it
    other = client_of(users["stranger"]).get("/lines/").content.decode()
    assert 'id="topbar-alerts"' not in other


def test_a_supervisor_acknowledges_and_resolves_from_the_line_page(alerted):
    line, alert, users = alerted
    client = client_of(users["supervisor"])
    page = client.get(f"/lines/{line.pk}/").content.decode()
    assert 'data-action="acknowledge"' in page
    answer = client.post(f"/alerts/{alert.pk}/acknowledge/", {"next": f"/lines/{line.pk}/"})
    assert (answer.status_code, answer["Location"]) == (302, f"/lines/{line.pk}/")
    again = client.post(f"/alerts/{alert.pk}/acknowledge/")
    assert again.status_code == 409 and "not open" in again.json()["message"]
    assert (
        client.post(f"/alerts/{alert.pk}/resolve/", {"next": "https://evil.example/"})["Location"]
        == f"/lines/{line.pk}/"
    )
    assert LineChange.objects.filter(line=line, field="alert", changed_by="supervisor").count() == 2
    assert client_of(users["stranger"]).post(f"/alerts/{alert.pk}/resolve/").status_code == 404


def test_rules_are_edited_and_bad_input_is_a_400_that_stores_nothing(alerted):
    line, _, users = alerted
    client = client_of(users["supervisor"])
    assert client.get(f"/lines/{line.pk}/alerts/").status_code == 200
    url = f"/lines/{line.pk}/alerts/rules/"
    good = {"escapes-threshold": "5", "escapes-window": "30", "escapes-min_items": "0"}
    bad = {
        **good,
        "review_backlog-threshold": "many",
        "review_backlog-window": "0",
        "review_backlog-min_items": "0",
    }
    answer = client.post(url, bad)
    assert answer.status_code == 400
    assert answer.json()["message"] == "review_backlog: the threshold must be a number"
    assert AlertRule.objects.get(line=line, metric="escapes").threshold == 3
    answer = client.post(url, {**good, "escapes-window": "0"})
    assert answer.status_code == 400 and "at least 1 minute" in answer.json()["message"]
    assert client.post(url, good).status_code == 302
    rule = AlertRule.objects.get(line=line, metric="escapes")
    assert (rule.threshold, rule.window, rule.enabled) == (5, 30, False)
    assert set(
        LineChange.objects.filter(field__startswith="alert_rule.").values_list("field", flat=True)
    ) == {"alert_rule.escapes.threshold", "alert_rule.escapes.window", "alert_rule.escapes.enabled"}


@pytest.mark.parametrize(
    "path,data,message",
    [
        ("mutes", {"end": "tomorrow", "reason": "x"}, "the end must be a date and time"),
        ("mutes", {"end": "2099-01-01T10:00", "reason": ""}, "say why the line is muted"),
        ("reset", {"reason": " "}, "say why the references start over"),
        (
            "settings",
            {"webhook_url": "ftp://x", "drift_audit_fraction": "0.2", "step_back_floor": "assist"},
            "http:// or https://",
        ),
        ("settings", {"drift_audit_fraction": "2", "step_back_floor": "assist"}, "within 0..1"),
        ("settings", {"drift_audit_fraction": "0.2", "step_back_floor": "full"}, "floor"),
    ],
)
def test_bad_supervisor_input_is_refused_with_its_reason(alerted, path, data, message):
    line, _, users = alerted
    answer = client_of(users["supervisor"]).post(f"/lines/{line.pk}/alerts/{path}/", data)
    assert answer.status_code == 400 and message in answer.json()["message"]
    assert not MuteWindow.objects.exists()
    assert not LineMonitoring.objects.filter(line=line).exclude(reference_since=None).exists()
    assert not LineChange.objects.filter(
        field__in=["mute_window", "reference_since", "webhook_url", "drift_audit_fraction"]
    ).exists()


def test_the_webhook_secret_is_kept_when_left_empty_and_never_shown(alerted):
    line, _, users = alerted
    client = client_of(users["supervisor"])
    form = {
        "webhook_url": "https://hooks.example.com/x",
        "webhook_secret": "s3cret-value",
        "drift_audit_fraction": "0.2",
        "step_back_floor": "partial",
        "step_back_enabled": "on",
    }
    assert client.post(f"/lines/{line.pk}/alerts/settings/", form).status_code == 302
    assert (
        client.post(
            f"/lines/{line.pk}/alerts/settings/", {**form, "webhook_secret": ""}
        ).status_code
        == 302
    )
    config = LineMonitoring.objects.get(line=line)
    assert (config.webhook_secret, config.step_back_floor) == ("s3cret-value", "partial")
    assert "s3cret-value" not in client.get(f"/lines/{line.pk}/alerts/").content.decode()
    assert "s3cret-value" not in "".join(LineChange.objects.values_list("new_value", flat=True))


def test_metrics_counts_the_unresolved_alerts(alerted, client, settings, tmp_path):
    from monitoring.alerts import acknowledge_alert
    from tests.metrics.conftest import Scrape

    settings.LOUPE_METRICS_DIR = tmp_path / "metrics"
    settings.LOUPE_METRICS_TOKEN = ""
    _, alert, _ = alerted
    acknowledge_alert(alert=alert, user="sam")
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1")
    figures = Scrape(response.content.decode())
    labels = {"line": "page-line", "metric": "review_backlog", "state": "acknowledged"}
    assert figures.value("loupe_open_alerts", **labels) == 1


def test_the_rules_page_shows_the_defaults_without_writing_them(make_line, client, settings):
    from accounts.services import create_user

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    line = make_line("fresh-line")
    client.force_login(
        create_user(username="sue", role="supervisor", line_names=[line.name], password=PASSWORD)
    )
    page = client.get(f"/lines/{line.pk}/alerts/").content.decode()
    assert 'name="prediction_queue_age-threshold" value="120"' in page
    assert not AlertRule.objects.exists() and not LineMonitoring.objects.exists()
