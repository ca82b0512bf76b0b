"""A line's monitoring page in Chromium: the vendored Chart.js draws every figure's chart under
the Content Security Policy, and the range selector (links and keys 1-4) switches the range."""

from monitoring import aggregation
from tests.browser.test_csp import watched
from tests.helpers import seed_inspection, seed_model_version

CHARTS = 7


def _charts_drawn(page):
    page.wait_for_function(
        "(n) => document.getElementById('monitoring-charts').dataset.drawn === String(n)",
        arg=CHARTS,
    )


def test_the_charts_render_and_the_range_selector_switches(
    make_line, station_with_token, make_user, login, screenshot
):
    line = make_line(name="line-m", level="partial", audit_fraction=0.0)
    station, _ = station_with_token(line, "cam-m")
    model = seed_model_version("browser-monitoring")
    for n, p in enumerate([0.1, 0.1, 0.9, 0.5]):
        seed_inspection(station, f"m{n}", probability=p, model_version=model)
    aggregation.aggregate_recent()

    page = login(make_user("sam", "supervisor", [line]))
    console = watched(page)
    page.goto(f"/lines/{line.pk}/")
    page.click("#line-monitoring")
    page.wait_for_url(f"**/lines/{line.pk}/monitoring/")
    _charts_drawn(page)
    assert page.locator("canvas[data-chart]").count() == CHARTS
    latency = page.locator("canvas[data-chart=latency]")
    # p50, p95, p99, the model's p95 and the budget line
    assert latency.get_attribute("data-drawn") == "5"
    box = latency.bounding_box()
    assert box["width"] > 200 and box["height"] > 150
    assert page.locator("#monitoring-ranges a[aria-current=page]").inner_text().startswith("Day")
    assert "4 (" in page.locator("#monitoring-summary").inner_text()
    screenshot(page, "monitoring-day")

    page.click("#monitoring-ranges a[data-range='30d']")
    page.wait_for_url("**/monitoring/?range=30d")
    _charts_drawn(page)
    assert page.locator("#monitoring-table tbody tr").count() == 120

    page.keyboard.press("1")
    page.wait_for_url("**/monitoring/?range=hour")
    _charts_drawn(page)
    assert page.locator("#monitoring-table tbody tr").count() == 60
    assert page.evaluate("() => window.__cspViolations") == []
    assert console == []


def test_the_concept_drift_charts_draw_under_the_csp(
    make_line, station_with_token, make_user, login, screenshot
):
    from datetime import timedelta

    from django.conf import settings
    from django.db.models import F

    from inspection.models import ReviewItem
    from review.services import decide_review_item

    line = make_line(name="line-c", level="shadow")
    station, _ = station_with_token(line, "cam-c")
    model = seed_model_version("browser-concept")
    from ml import services as ml_services

    ml_services.set_active_version(line=line, model_version=model, changed_by="test")
    inspector = make_user("ivy", "inspector", [line])
    for n in range(150):  # one rolling window of 100, a second 50 items on
        p = 0.9 if n % 4 == 0 else 0.1
        item = seed_inspection(station, f"c{n}", probability=p, model_version=model)
        human = "reject" if (n % 4 == 0) != (n % 25 == 0) else "accept"
        decide_review_item(item=item.review_item, inspector=inspector, outcome=human)
    passed = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    ReviewItem.objects.update(decided_at=F("decided_at") - passed)  # every decision final

    page = login(make_user("sam", "supervisor", [line]))
    console = watched(page)
    page.goto(f"/lines/{line.pk}/monitoring/")
    page.wait_for_function("() => document.getElementById('concept-charts').dataset.drawn === '2'")
    assert "Estimated agreement (CBPE)" in page.locator("#concept").inner_text()
    assert page.locator("#concept-table tbody tr").count() >= 3
    screenshot(page, "monitoring-concept")
    assert page.evaluate("() => window.__cspViolations") == []
    assert console == []
