"""The rollout page in Chromium: the steps chart is drawn, and a supervisor switches a
blue-green rollout with the keyboard and rolls it back, with no CSP violation or console error."""

from inspection.models import Rollout
from inspection.rollouts import start_rollout
from ml import services as ml_services
from tests.browser.test_csp import watched
from tests.helpers import seed_inspection, seed_model_version


def test_a_supervisor_switches_with_the_keyboard_and_sees_the_steps(
    make_line, station_with_token, make_user, login, screenshot
):
    line = make_line(name="line-rollout", level="human_only")
    station, _ = station_with_token(line, "cam-a")
    blue, green = seed_model_version("blue"), seed_model_version("green")
    ml_services.set_active_version(line=line, model_version=blue, changed_by="test")
    rollout = start_rollout(line=line, challenger=green, mode="blue_green", changed_by="test")
    for number in range(3):
        seed_inspection(station, f"b{number}")

    page = login(make_user("sam", "supervisor", [line]))
    console = watched(page)
    page.goto(f"/lines/{line.pk}/rollout/")
    assert "Blue-green" in page.locator("#rollout-summary").inner_text()
    with page.expect_navigation():
        page.keyboard.press("s")
    assert Rollout.objects.get(pk=rollout.pk).share == 1.0
    assert "switch done" in page.locator(".messages").inner_text()
    seed_inspection(station, "g0")
    page.reload()
    # two steps drawn: share 0 (three items) and share 1 (one), each a bar and a point
    drawn = page.evaluate("() => Chart.getChart('rollout-chart').data.datasets.map((d) => d.data)")
    assert drawn == [[0, 100], [3, 0], [0, 1]]
    screenshot(page, "rollout")

    page.fill("#rollout-actions input[name=reason]", "wrong lot")
    with page.expect_navigation():
        page.click("#rollout-actions button[data-shortcut=r]")
    rollout.refresh_from_db()
    assert (rollout.state, rollout.share, rollout.ended_reason) == ("rolled_back", 0.0, "wrong lot")
    assert "Rolled back" in page.locator("#rollout-state").inner_text()
    assert page.evaluate("window.__cspViolations") + console == []
