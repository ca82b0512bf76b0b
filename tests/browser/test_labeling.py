"""The box editor, the annotation history and the data team's page, in headless Chromium."""

import pytest

from labeling.models import AnnotationRevision
from tests.helpers import seed_inspection, seed_model_version

SCRIPT = "<script>alert(1)</script>"
MODEL_REGION = {"x0": 10.0, "y0": 10.0, "x1": 40.0, "y1": 30.0, "label": "scratch", "score": 0.9}


@pytest.fixture
def labeling_inspection(make_line, station_with_token):
    """An assist-level item (the inspector sees the model) on which the model boxed a scratch."""
    line = make_line(name="line-a", level="assist", audit_fraction=0.0)  # never blind
    station, _ = station_with_token(line)
    inspection = seed_inspection(
        station,
        "SN-42",
        probability=0.93,
        regions=[MODEL_REGION],
        model_version=seed_model_version("v1"),
    )
    return line, inspection


def record_dialogs(page):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    return dialogs


class Canvas:
    """Mouse gestures in image pixels on the editor's canvas."""

    def __init__(self, page, image_width):
        self.page = page
        box = page.locator("#annotate-canvas").bounding_box()
        self.left, self.top = box["x"], box["y"]
        self.scale = box["width"] / image_width

    def at(self, x, y):
        return self.left + x * self.scale, self.top + y * self.scale

    def drag(self, start, end):
        mouse = self.page.mouse
        mouse.move(*self.at(*start))
        mouse.down()
        mouse.move(*self.at(*end), steps=6)
        mouse.up()


def box_count(page):
    return int(page.inner_text("#annotate-count"))


def test_an_inspector_draws_resizes_and_saves_boxes(
    labeling_inspection, make_user, login, screenshot
):
    line, inspection = labeling_inspection
    user = make_user("ines", "inspector", [line])
    page = login(user)
    dialogs = record_dialogs(page)
    page.goto(f"/inspections/{inspection.pk}/label/")
    canvas = Canvas(page, inspection.width)
    assert canvas.scale > 2  # a 128 px image is blown up to draw on

    # draw, then resize by the bottom-right corner handle, then choose its class
    canvas.drag((20, 20), (60, 50))
    assert box_count(page) == 1
    canvas.drag((60, 50), (80, 70))
    page.select_option("#annotate-class", "dent")

    # a second box, moved by dragging its inside, then deleted with the key
    canvas.drag((90, 90), (110, 110))
    canvas.drag((100, 100), (105, 95))
    assert "dent · 95,85 – 115,105" in page.inner_text("#annotate-box-list")
    page.keyboard.press("Delete")
    assert box_count(page) == 1

    # a third, drawn backwards (bottom-right to top-left), deleted with the button
    canvas.drag((120, 120), (100, 100))
    page.click("#annotate-delete")
    assert box_count(page) == 1

    assert page.is_checked("input[name=image_label][value=defective]")  # a box means a defect
    page.keyboard.press("Control+s")
    page.wait_for_selector("#annotate-status:has-text('Saved revision 1')")
    screenshot(page, "label-editor")

    revision = AnnotationRevision.objects.get(inspection=inspection)
    assert (revision.number, revision.author, revision.image_label) == (1, user, "defective")
    assert revision.source == "correction"  # a dent where the model saw a scratch
    [box] = revision.boxes
    assert box["label"] == "dent"
    for key, expected in {"x0": 20, "y0": 20, "x1": 80, "y1": 70}.items():
        assert box[key] == pytest.approx(expected, abs=1)

    # start again from the model's boxes (replacing the current one asks first) and save
    page.click("#annotate-from-model")
    assert dialogs == ["Replace the current boxes with the model's boxes?"]
    page.click("#annotate-save")
    page.wait_for_selector("#annotate-status:has-text('Saved revision 2 (model accepted)')")
    latest = AnnotationRevision.objects.get(inspection=inspection, number=2)
    assert latest.boxes == [{k: v for k, v in MODEL_REGION.items() if k != "score"}]

    page.goto(f"/inspections/{inspection.pk}/history/")
    sections = page.locator("#revisions section")
    assert sections.count() == 2
    assert "ground truth" in sections.nth(0).inner_text()
    assert "Model accepted" in sections.nth(0).inner_text()
    assert "dent [20,20 – 80,70]" in sections.nth(1).inner_text()
    screenshot(page, "label-history")

    page.goto("/data/")
    assert page.locator("#labeled tbody tr").count() == 1
    assert "SN-42" in page.inner_text("#labeled")
    page.wait_for_function(
        "() => document.querySelector('#labeled img.thumb').naturalWidth > 0"
    )
    screenshot(page, "labeled-data")


def test_leaving_with_unsaved_boxes_asks_first(labeling_inspection, make_user, login):
    line, inspection = labeling_inspection
    page = login(make_user("ines", "inspector", [line]))
    page.goto(f"/inspections/{inspection.pk}/label/")
    Canvas(page, inspection.width).drag((20, 20), (60, 50))
    with page.expect_event("dialog") as asked:
        page.close(run_before_unload=True)
    assert asked.value.type == "beforeunload"
    asked.value.accept()
    assert AnnotationRevision.objects.count() == 0


def test_a_class_named_like_a_script_renders_as_text(
    make_line, station_with_token, make_user, login
):
    line = make_line(name="line-x", defect_classes=["scratch", SCRIPT])
    station, _ = station_with_token(line)
    inspection = seed_inspection(station, "SN-X")
    page = login(make_user("xena", "inspector", [line]))
    dialogs = record_dialogs(page)

    page.goto(f"/inspections/{inspection.pk}/label/")
    assert page.locator("#annotate-class option").all_inner_texts() == ["scratch", SCRIPT]
    page.select_option("#annotate-class", SCRIPT)
    Canvas(page, inspection.width).drag((10, 10), (50, 50))
    assert SCRIPT in page.inner_text("#annotate-box-list")
    page.click("#annotate-save")
    page.wait_for_selector("#annotate-status:has-text('Saved revision 1')")
    assert AnnotationRevision.objects.get().boxes[0]["label"] == SCRIPT

    page.goto("/data/")
    assert SCRIPT in page.inner_text("#counts")
    assert SCRIPT in page.inner_text("#labeled")
    page.goto(f"/inspections/{inspection.pk}/history/")
    assert SCRIPT in page.inner_text("#revisions")
    assert dialogs == []
