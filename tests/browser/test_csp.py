"""The Content Security Policy in headless Chromium: every role's main pages load without a
violation, and their scripts still work under it (all of them come from static/)."""

import pytest

from tests.helpers import seed_inspection

# Recorded from the first script of every page load, before Loupe's own scripts run.
WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI || "inline"}`);
});
"""


@pytest.fixture
def floor(make_line, station_with_token):
    lines = [make_line(name="line-a"), make_line(name="line-b")]
    station, _ = station_with_token(lines[0])
    inspections = [seed_inspection(station, f"A-{i}") for i in range(3)]
    return lines, inspections


def watched(page):
    """Start recording CSP violations (events and console reports) on `page`."""
    console = []
    page.on(
        "console",
        lambda message: console.append(message.text)
        if "Content Security Policy" in message.text
        else None,
    )
    page.add_init_script(WATCH)
    return console


def visit(page, console, url, ready=None):
    page.goto(url)
    if ready:
        page.wait_for_selector(ready)
    page.wait_for_load_state("networkidle")
    found = page.evaluate("window.__cspViolations") + console
    assert found == [], f"{url}: {found}"


def test_inspector_pages_run_their_scripts_with_no_violation(floor, make_user, login):
    lines, inspections = floor
    page = login(make_user("ana", "inspector", lines))
    console = watched(page)
    visit(page, console, "/review/", "#stage:not([hidden])")  # review.js claimed an item
    visit(page, console, f"/inspections/{inspections[0].pk}/label/", "#annotate-canvas")
    # annotate.js sized the canvas to the image
    page.wait_for_function("() => document.getElementById('annotate-canvas').style.width !== ''")
    visit(page, console, "/data/")
    visit(page, console, "/account/api-tokens/")


def test_supervisor_pages_and_the_line_filter_work_with_no_violation(floor, make_user, login):
    lines, _ = floor
    page = login(make_user("sam", "supervisor", lines))
    console = watched(page)
    visit(page, console, "/lines/")
    visit(page, console, f"/lines/{lines[0].pk}/")
    visit(page, console, "/models/")
    # the line filter submits itself on change (static JS, not an inline onchange handler)
    page.select_option("select[name=line]", str(lines[1].pk))
    page.wait_for_url(f"**/models/?line={lines[1].pk}")
    assert page.evaluate("window.__cspViolations") + console == []


def test_data_team_pages_work_with_no_violation(floor, make_user, login):
    lines, _ = floor
    page = login(make_user("dana", "data_team", lines))
    console = watched(page)
    for url in ("/data/", "/datasets/", "/datasets/import/", "/account/api-tokens/"):
        visit(page, console, url)


def test_admin_pages_and_the_api_docs_work_with_no_violation(floor, make_user, login):
    page = login(make_user("root", "admin"))
    console = watched(page)
    visit(page, console, "/admin/")
    visit(page, console, "/admin/accounts/apitoken/")
    visit(page, console, "/admin/axes/accessattempt/")
    # Swagger UI starts from a script file of its own (SpectacularSwaggerSplitView)
    visit(page, console, "/api/docs/", ".swagger-ui .information-container .title")


def test_an_inline_script_is_refused_and_reported(floor, make_user, login):
    """The check above can fail: an inline handler is blocked, and the violation is seen."""
    page = login(make_user("root", "admin"))
    console = watched(page)
    page.goto("/lines/")
    page.evaluate(
        """document.body.insertAdjacentHTML("beforeend",
        '<img src="/no-such-image.png" onerror="window.__inlineRan = true">')"""
    )
    page.wait_for_function("() => window.__cspViolations.length > 0")
    assert page.evaluate("window.__inlineRan") is None
    assert page.evaluate("window.__cspViolations")[0].startswith("script-src")
    del console
