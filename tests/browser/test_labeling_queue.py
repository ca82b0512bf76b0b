"""The labeling queue in headless Chromium: a labeler works items with the keyboard alone,
and two labelers never get the same item."""

import re

import pytest

from labeling import queue
from labeling.models import QueueEntry
from tests.browser.test_csp import watched
from tests.helpers import seed_inspection, seed_model_version

MODEL_REGION = {"x0": 10.0, "y0": 10.0, "x1": 40.0, "y1": 30.0, "label": "scratch", "score": 0.9}
LABEL_PAGE = re.compile(r"/inspections/(\d+)/label/\?queue=1")


@pytest.fixture
def queued(make_line, station_with_token):
    """An assist line with two items on its queue: an escape the model boxed, then an item
    labeled defective without a box."""
    line = make_line(name="line-a", level="assist", audit_fraction=0.0)  # never blind
    station, _ = station_with_token(line)
    model = seed_model_version("v1")
    escape = seed_inspection(
        station, "SN-ESC", probability=0.93, regions=[MODEL_REGION], model_version=model
    )
    boxless = seed_inspection(station, "SN-BOX", probability=0.9, model_version=model)
    queue.add_entries(
        [
            (escape.pk, line.pk, "escape", 0.0, {"why": "escape (audit found it)"}),
            (boxless.pk, line.pk, "boxless", 0.0, {"why": "defective without boxes"}),
        ]
    )
    return line, escape, boxless


def inspection_on(page) -> int:
    return int(LABEL_PAGE.search(page.url).group(1))


def test_a_labeler_works_two_items_with_the_keyboard(queued, make_user, login, screenshot):
    line, escape, boxless = queued
    user = make_user("lara", "inspector", [line])
    page = login(user)
    csp_reports = watched(page)
    page.goto("/labeling/")
    assert page.inner_text("#queue-left") == "2"
    assert "uncertainty" in page.inner_text("#queue-strategy")  # how items are chosen
    screenshot(page, "labeling-queue")

    page.keyboard.press("Enter")
    page.wait_for_url(LABEL_PAGE)
    assert inspection_on(page) == escape.pk  # the escape first
    assert "Audit escape" in page.inner_text("#queue-bar")
    assert page.inner_text("#queue-done") == "0"
    page.keyboard.press("m")  # the model's box, as the editor's own shortcut
    page.keyboard.press("n")  # save and next
    page.wait_for_url(lambda url: f"/inspections/{boxless.pk}/label/" in url)
    assert page.inner_text("#queue-done") == "1"
    assert page.inner_text("#queue-left") == "1"
    screenshot(page, "labeling-queue-editor")

    page.keyboard.press("d")
    page.keyboard.press("Control+s")  # the editor's save moves on too; nothing left: the queue
    page.wait_for_url(lambda url: url.endswith("/labeling/"))
    assert page.inner_text("#queue-done") == "2"
    assert page.inner_text("#queue-left") == "0"
    done = {
        row.get_attribute("data-kind"): row.inner_text()
        for row in page.query_selector_all("#queue-progress tbody tr")
    }
    assert done["escape"].split("\t")[1:] == ["1", "0"]
    assert done["boxless"].split("\t")[1:] == ["1", "0"]

    assert csp_reports + page.evaluate("window.__cspViolations") == []

    entries = QueueEntry.objects.order_by("priority")
    assert [(e.state, e.done_by_id) for e in entries] == [("done", user.pk)] * 2
    assert escape.annotations.get().boxes[0]["label"] == "scratch"


def test_two_labelers_never_get_the_same_item_and_a_skip_frees_it(queued, make_user, login):
    line, escape, boxless = queued
    first = login(make_user("lara", "inspector", [line]))
    second = login(make_user("otto", "data_team", [line]))
    for page in (first, second):
        page.goto("/labeling/")
        page.keyboard.press("Enter")
        page.wait_for_url(LABEL_PAGE)

    assert {inspection_on(first), inspection_on(second)} == {escape.pk, boxless.pk}
    holders = dict(QueueEntry.objects.values_list("inspection_id", "assigned_to__username"))
    assert holders[inspection_on(first)] == "lara"
    assert holders[inspection_on(second)] == "otto"

    # the first skips: nothing else is free for them, so back to the queue page; the
    # skipped item is free for the second labeler once they finish theirs
    skipped = inspection_on(first)
    first.keyboard.press("x")
    first.wait_for_url(lambda url: url.endswith("/labeling/"))
    assert QueueEntry.objects.get(inspection_id=skipped).assigned_to is None
    second.keyboard.press("o")
    second.keyboard.press("n")
    second.wait_for_url(lambda url: f"/inspections/{skipped}/label/" in url)
