"""The supervisor console in a real browser: a confirmed raise, and who may see or change what."""

from inspection import services
from inspection.models import Line
from ml import services as ml_services
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version

# (p(defect), the human's decision); the model (reject at 0.8) agrees on 5 of the 8
KNOWN_SET = [
    (0.05, "accept"),
    (0.10, "accept"),
    (0.15, "reject"),
    (0.50, "accept"),
    (0.60, "reject"),
    (0.85, "reject"),
    (0.90, "accept"),
    (0.95, "reject"),
]


def shadow_line_with_evidence(make_user):
    line = services.create_line(name="press-4", level="shadow")
    station, _ = services.create_station(line=line, name="cam-1")
    version = seed_model_version("v1")
    ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
    inspector = make_user("ivy", "inspector", [line])
    for i, (p, human) in enumerate(KNOWN_SET):
        item = seed_inspection(station, f"k-{i}", probability=p, model_version=version).review_item
        decide_review_item(item=item, inspector=inspector, outcome=human)
    return line


def test_supervisor_raises_a_line_from_shadow_to_partial_through_the_confirmation(
    make_user, login, screenshot, settings
):
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 8
    line = shadow_line_with_evidence(make_user)
    page = login(make_user("sam", "supervisor", [line]))

    page.goto("/lines/")
    row = page.locator("#lines tr[data-line=press-4]")
    assert row.locator("[data-count=inspected]").inner_text() == "8"
    assert row.locator("[data-count=agreement]").inner_text() == "62.5% of 8"
    screenshot(page, "console-lines")

    row.get_by_role("link", name="press-4").click()
    page.wait_for_url(f"**/lines/{line.pk}/")
    unbiased = page.locator("#evidence-figures tr[data-evidence=unbiased]")
    assert unbiased.locator("[data-figure=agreement]").inner_text() == "62.5% (5)"
    assert unbiased.locator("[data-figure=agreement-bounds]").inner_text() == "34.8–83.9%"
    assert page.locator("#gate-verdict").inner_text() == "needs an override"
    assert "fail" in page.locator("#gate tr[data-rule=agreement]").inner_text()
    screenshot(page, "console-evidence")

    # a pilot line: the supervisor loosens its rules, which the audit log keeps; wide enough
    # for the wider reject threshold they then propose (the gate judges at that threshold)
    page.fill("input[name=agreement_target_pct]", "20")
    page.fill("input[name=escape_limit_pct]", "95")
    page.fill("#rules-form input[name=reason]", "pilot line, wide thresholds")
    page.get_by_role("button", name="Save rules").click()
    page.wait_for_url(f"**/lines/{line.pk}/")
    assert page.locator("#gate-verdict").inner_text() == "passes"

    page.select_option("select[name=automation_level]", "partial")
    page.fill("input[name=accept_threshold]", "0.1")
    page.fill("input[name=reject_threshold]", "0.9")
    page.fill("textarea[name=reason]", "62.5% agreement, thresholds kept wide")
    screenshot(page, "console-line")
    page.get_by_role("button", name="Review the change…").click()

    page.wait_for_url(f"**/lines/{line.pk}/change/")
    effect = page.locator("#confirm-effect").inner_text()
    assert "would have auto-decided 50% (4), with 1 disagreement" in effect
    assert "passes" in page.locator("#confirm-evidence").inner_text()
    assert Line.objects.get(pk=line.pk).automation_level == "shadow"  # nothing changed yet
    screenshot(page, "console-confirm")
    page.click("#confirm-change")

    page.wait_for_url(f"**/lines/{line.pk}/")
    assert page.locator("#line-level").inner_text() == "Partial automation"
    assert "level shadow → partial" in page.locator(".messages").inner_text()
    log = page.locator("#audit-log").inner_text()
    assert "automation_level\tshadow\tpartial\t62.5% agreement, thresholds kept wide" in log
    assert "agreement_target\t0.95\t0.2\tpilot line, wide thresholds" in log
    line.refresh_from_db()
    assert (line.automation_level, line.accept_threshold, line.reject_threshold) == (
        "partial",
        0.1,
        0.9,
    )
    assert line.changes.get(field="automation_level").changed_by == "sam"


def test_supervisor_records_an_escape_and_picks_the_station_of_a_shared_serial(
    make_user, login, screenshot
):
    line = services.create_line(name="press-6", level="full", audit_fraction=0.0)
    version = seed_model_version("v6")
    ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
    for name in ("cam-1", "cam-2"):
        station, _ = services.create_station(line=line, name=name)
        seed_inspection(station, "SN-7", probability=0.05, model_version=version)
    page = login(make_user("sam", "supervisor", [line]))
    page.goto(f"/lines/{line.pk}/")
    assert page.locator("#no-escapes").count() == 1

    page.fill("#escape-form input[name=serial]", "SN-7")
    page.fill("#escape-form input[name=note]", "customer return 4411")
    page.get_by_role("button", name="Record escape").click()
    error = page.locator("#escape-error-station").inner_text()
    assert "stations cam-1, cam-2 each inspected an item 'SN-7': pick the station" in error
    options = page.locator("#escape-form select[name=station] option").all_inner_texts()
    assert options == ["any station", "cam-1", "cam-2"]
    screenshot(page, "console-escape-station")
    page.select_option("#escape-form select[name=station]", label="cam-2")
    page.get_by_role("button", name="Record escape").click()

    page.wait_for_url(f"**/lines/{line.pk}/")
    assert "Escape recorded on SN-7 (cam-2)" in page.locator(".messages").inner_text()
    counts = page.locator("#escape-counts tr[data-version=v6]").inner_text()
    assert counts.split("\t") == ["v6", "0", "1", "1"]
    page.locator("#latest-escapes").get_by_role("link", name="SN-7").click()
    assert page.locator("#escape-mark").inner_text() == "escape"


def test_an_inspector_sees_the_lines_but_may_not_change_them(make_user, login):
    line = services.create_line(name="press-4", level="shadow")
    page = login(make_user("ivo", "inspector", [line]))
    assert page.goto("/lines/").status == 200
    assert page.locator("#lines tr[data-line=press-4]").count() == 1
    page.goto(f"/lines/{line.pk}/")
    assert page.locator("#line-change-form").count() == 0
    assert page.goto(f"/lines/{line.pk}/change/").status == 403


def test_a_supervisor_of_one_line_does_not_find_another(make_user, login):
    line_a = services.create_line(name="press-4", level="shadow")
    line_b = services.create_line(name="press-9", level="shadow")
    page = login(make_user("sam", "supervisor", [line_a]))
    assert page.goto(f"/lines/{line_a.pk}/").status == 200
    assert page.goto(f"/lines/{line_b.pk}/").status == 404
    assert page.goto(f"/lines/{line_b.pk}/change/").status == 404
