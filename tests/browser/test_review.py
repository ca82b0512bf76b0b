"""The review queue and the pages every role lands on, in headless Chromium."""

import pytest

from inspection.models import Decision, ReviewItem
from review.models import ReviewEvent
from tests.helpers import seed_inspection, seed_model_version

SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def review_line(make_line, station_with_token):
    def make(n, name="line-a", level="human_only", audit_fraction=0.0, **seed):
        # no blind sample unless asked: an assist item shows the model
        line = make_line(name=name, level=level, audit_fraction=audit_fraction)
        station, _ = station_with_token(line, name=f"cam-{name}")
        for i in range(n):
            seed_inspection(station, f"{name}-{i:03d}", **seed)
        return line

    return make


def item_on_screen(page, previous=None):
    """Wait until an item other than `previous` is on screen and return its id."""
    page.wait_for_function(
        "prev => { const id = document.getElementById('stage').dataset.itemId;"
        " return id && id !== prev; }",
        arg=previous or "",
    )
    return page.get_attribute("#stage", "data-item-id")


def no_dialogs(page):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    return dialogs


@pytest.mark.parametrize(
    "role, lands_on, nav",
    [
        ("inspector", "/review/", ["Review", "Lines", "Labeling", "Labeled data", "Models"]),
        (
            "supervisor",
            "/lines/",
            ["Review", "Lines", "Labeling", "Labeled data", "Models", "Datasets"],
        ),
        ("data_team", "/data/", ["Lines", "Labeling", "Labeled data", "Models", "Datasets"]),
        (
            "admin",
            "/lines/",
            ["Review", "Lines", "Labeling", "Labeled data", "Models", "Datasets", "Admin"],
        ),
    ],
)
def test_each_role_logs_in_and_lands_on_its_work(
    review_line, make_user, login, screenshot, role, lands_on, nav
):
    line = review_line(1)
    user = make_user(f"{role}-user", role, [] if role == "admin" else [line])
    page = login(user)
    assert page.url.endswith(lands_on)
    assert page.locator(".topbar nav a").all_inner_texts() == nav
    assert f"{role}-user" in page.inner_text(".topbar .who")
    screenshot(page, f"home-{role}")


def test_inspector_works_a_queue_of_20_by_keyboard_only(review_line, make_user, login, screenshot):
    line = review_line(20)
    ana = make_user("ana", "inspector", [line])
    page = login(ana)
    dialogs = no_dialogs(page)
    seen, previous = [], None
    for n in range(20):
        previous = item_on_screen(page, previous)
        seen.append(int(previous))
        if n == 0:
            screenshot(page, "review-queue")
        page.keyboard.press("r" if n % 4 == 0 else "a")
    page.wait_for_selector("#empty", state="visible")
    assert page.inner_text("#decided-count") == "20"
    assert page.inner_text("#open-count") == "0"
    screenshot(page, "review-queue-empty")
    items = ReviewItem.objects.filter(inspection__line=line).order_by("pk")
    assert sorted(seen) == [item.pk for item in items]
    assert all(item.inspector == ana and item.time_spent_ms is not None for item in items)
    outcomes = [Decision.objects.get(inspection=i.inspection).outcome for i in items]
    assert outcomes.count("reject") == 5 and outcomes.count("accept") == 15
    assert dialogs == []


def test_z_undoes_the_last_decision(review_line, make_user, login):
    line = review_line(2)
    page = login(make_user("ana", "inspector", [line]))
    first = item_on_screen(page)
    page.keyboard.press("r")
    item_on_screen(page, first)
    page.keyboard.press("z")
    page.wait_for_function(
        "first => document.getElementById('stage').dataset.itemId === first", arg=first
    )
    page.wait_for_function("() => document.getElementById('decided-count').textContent === '0'")
    assert not Decision.objects.filter(inspection__review_item__pk=first).exists()
    page.keyboard.press("a")
    page.wait_for_function("() => document.getElementById('decided-count').textContent === '1'")
    assert Decision.objects.get(inspection__review_item__pk=first).outcome == "accept"


def test_two_inspectors_at_once_never_decide_the_same_item(review_line, make_user, login):
    line = review_line(20)
    pages = [login(make_user(name, "inspector", [line])) for name in ("ana", "ben")]
    previous = [None, None]
    done = [False, False]
    rounds = 0
    while not all(done) and rounds < 60:
        rounds += 1
        for i, page in enumerate(pages):
            if done[i]:
                continue
            if page.is_visible("#empty"):
                done[i] = True
                continue
            try:
                previous[i] = item_on_screen(page, previous[i])
            except Exception:
                done[i] = page.is_visible("#empty")
                continue
            page.keyboard.press("a")
    for page in pages:
        page.wait_for_selector("#empty", state="visible")
    decided = [int(p.inner_text("#decided-count")) for p in pages]
    assert sum(decided) == 20 and min(decided) > 0
    assert Decision.objects.filter(inspection__line=line).count() == 20
    assert ReviewEvent.objects.filter(action="decided").count() == 20
    assert not ReviewItem.objects.filter(inspection__line=line, state="open").exists()


def test_assist_shows_the_models_regions_and_shadow_hides_them(
    review_line, make_user, login, screenshot
):
    version = seed_model_version()
    region = {"x0": 10, "y0": 20, "x1": 60, "y1": 40, "label": SCRIPT, "score": 0.9}
    assist = review_line(
        1,
        name="assist-line",
        level="assist",
        probability=0.7,
        regions=[region],
        model_version=version,
    )
    page = login(make_user("ana", "inspector", [assist]))
    dialogs = no_dialogs(page)
    item_on_screen(page)
    assert page.locator("#stage .region").count() == 1
    assert page.inner_text("#stage .region span") == f"{SCRIPT} 90%"
    screenshot(page, "review-assist-regions")
    page.goto(page.url)  # the detail page draws the same regions, as text too
    item_on_screen(page)  # the link points at the item once the reloaded page has claimed it
    page.click("#detail-link")
    page.wait_for_selector("#predictions")
    assert SCRIPT in page.inner_text("#detail-stage")
    screenshot(page, "inspection-detail")
    assert dialogs == []

    shadow = review_line(
        1,
        name="shadow-line",
        level="shadow",
        probability=0.7,
        regions=[region],
        model_version=version,
    )
    page = login(make_user("ben", "inspector", [shadow]))
    item_on_screen(page)
    assert page.locator("#stage .region").count() == 0
    assert page.inner_text("#fact-model") == "hidden for this item"

    # every assist item a blind sample: the model stays hidden, and deciding tells nothing of it
    blind = review_line(
        1,
        name="blind-line",
        level="assist",
        audit_fraction=1.0,
        probability=0.7,
        regions=[region],
        model_version=version,
    )
    page = login(make_user("cat", "inspector", [blind]))
    item_on_screen(page)
    assert page.locator("#stage .region").count() == 0
    assert page.inner_text("#fact-model") == "hidden for this item"
    assert page.inner_text("#fact-reason") == "Blind sample (model hidden)"
    with page.expect_response(lambda r: r.url.endswith("/decide")) as answer:
        page.keyboard.press("r")
    assert "model_agrees" not in answer.value.json()
    assert "rejected" in page.inner_text("#status")


def test_direct_url_to_another_lines_inspection_is_a_404(review_line, make_user, login):
    line_a = review_line(1, name="line-a")
    line_b = review_line(1, name="line-b")
    other = ReviewItem.objects.get(inspection__line=line_b).inspection_id
    mine = ReviewItem.objects.get(inspection__line=line_a).inspection_id
    page = login(make_user("ana", "inspector", [line_a]))
    assert page.goto(f"/inspections/{mine}/").status == 200
    assert page.goto(f"/inspections/{other}/").status == 404
    assert page.goto(f"/inspections/{other}/image").status == 404
