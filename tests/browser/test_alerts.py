"""Alerts in Chromium: the top bar counts them, a supervisor acknowledges one from the line
page with the keyboard and resolves another with a click, and the audit log shows both."""

from monitoring import alert_rules
from monitoring.alerts import evaluate_alerts
from monitoring.models import AlertRule
from tests.browser.test_csp import watched
from tests.helpers import seed_inspection


def test_a_supervisor_acknowledges_with_the_keyboard_and_resolves_with_a_click(
    make_line, station_with_token, make_user, login, screenshot
):
    line = make_line(name="line-alerts", level="human_only")
    station, _ = station_with_token(line, "cam-a")
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line, metric="review_backlog").update(threshold=1)
    seed_inspection(station, "a1")
    (first,) = evaluate_alerts()

    page = login(make_user("sam", "supervisor", [line]))
    console = watched(page)
    page.goto(f"/lines/{line.pk}/")
    assert page.locator("#topbar-alerts").inner_text() == "1 alert"
    row = page.locator(f"#alert-{first.pk}")
    assert row.get_attribute("data-state") == "open"
    assert "1 open review item" in row.inner_text()
    screenshot(page, "line-alerts")

    row.locator("button[data-action=acknowledge]").focus()
    with page.expect_navigation():  # the same URL again: wait for the new page, not the old
        page.keyboard.press("Enter")
    row = page.locator(f"#alert-{first.pk}")
    assert row.get_attribute("data-state") == "acknowledged"
    assert row.locator("button[data-action=acknowledge]").count() == 0
    assert "acknowledged" in page.locator(".messages").inner_text()

    with page.expect_navigation():
        row.locator("button[data-action=resolve]").click()
    assert page.locator(f"#alert-{first.pk}").count() == 0
    assert page.locator("#no-alerts").is_visible()
    assert page.locator("#topbar-alerts").count() == 0
    log = page.locator("body").inner_text()
    assert f"#{first.pk} acknowledged: Review backlog" in log
    assert f"#{first.pk} resolved: Review backlog" in log
    assert page.evaluate("window.__cspViolations") + console == []

    page.click("#alert-rules-link")
    page.wait_for_url(f"**/lines/{line.pk}/alerts/")
    assert page.locator("#rules tbody tr").count() == len(alert_rules.METRICS)
    assert "#1 resolved" not in page.locator("#recent-alerts").inner_text()
    assert page.locator(f"#recent-alerts >> text={first.message}").count() == 1
    screenshot(page, "line-alert-rules")
