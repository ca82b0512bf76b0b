"""labeling.services: validating, numbering and classifying annotation revisions."""

import threading

import pytest
from django.db import connection

from inspection.models import Line
from labeling import services
from labeling.models import AnnotationRevision, LabelSource
from loupe.common.errors import InvalidInput
from tests.labeling.conftest import MODEL_BOX

SHIFTED = {**MODEL_BOX, "x0": 12.0, "x1": 42.0}  # IoU 0.875 with MODEL_BOX
FAR = {**MODEL_BOX, "x0": 60.0, "x1": 90.0}  # IoU 0
DENT = {"x0": 70.0, "y0": 70.0, "x1": 90.0, "y1": 100.0, "label": "dent"}


def save(inspection, author, image_label="defective", boxes=(), note=""):
    return services.save_annotation(
        inspection=inspection, author=author, image_label=image_label, boxes=list(boxes), note=note
    )


def test_revisions_are_numbered_and_the_latest_is_the_ground_truth(defective, inspector):
    first, created = save(defective, inspector, boxes=[MODEL_BOX])
    second, _ = save(defective, inspector, boxes=[DENT])
    third, _ = save(defective, inspector, image_label="ok")

    assert created is True
    assert [first.number, second.number, third.number] == [1, 2, 3]
    latest = services.latest_revisions(Line.objects.all()).get()
    assert latest.pk == third.pk
    # earlier revisions stay as they were
    first.refresh_from_db()
    assert first.boxes == [MODEL_BOX]


def test_boxes_are_stored_clean_in_image_pixels(defective, inspector):
    revision, _ = save(
        defective, inspector, boxes=[{"x0": 1, "y0": 2.123456, "x1": 3, "y1": 4, "label": "dent"}]
    )
    assert revision.boxes == [{"x0": 1.0, "y0": 2.12, "x1": 3.0, "y1": 4.0, "label": "dent"}]


def test_without_a_model_output_a_label_is_a_human_label(inspect, inspector):
    inspection = inspect("SN-human")
    revision, _ = save(inspection, inspector, boxes=[DENT])
    assert revision.source == LabelSource.HUMAN
    assert revision.compared_with is None


@pytest.mark.parametrize("boxes", [[MODEL_BOX], [SHIFTED]], ids=["same", "shifted-iou-0.88"])
def test_keeping_the_models_answer_is_model_accepted(defective, inspector, boxes):
    revision, _ = save(defective, inspector, boxes=boxes)
    assert revision.source == LabelSource.MODEL_ACCEPTED
    assert revision.compared_with == defective.predictions.get()


@pytest.mark.parametrize(
    ("image_label", "boxes"),
    [
        ("defective", [{**MODEL_BOX, "label": "dent"}]),
        ("defective", [FAR]),
        ("defective", [MODEL_BOX, DENT]),
        ("defective", []),
        ("ok", []),
    ],
    ids=["other-class", "moved-away", "extra-box", "box-removed", "image-label-ok"],
)
def test_changing_what_the_model_said_is_a_correction(defective, inspector, image_label, boxes):
    revision, _ = save(defective, inspector, image_label=image_label, boxes=boxes)
    assert revision.source == LabelSource.CORRECTION
    assert revision.is_correction


def test_agreeing_that_a_clean_image_is_ok_is_model_accepted(inspect, inspector):
    inspection = inspect("SN-ok", probability=0.05)
    assert save(inspection, inspector, image_label="ok")[0].source == LabelSource.MODEL_ACCEPTED
    assert save(inspection, inspector, boxes=[DENT])[0].source == LabelSource.CORRECTION


def test_two_boxes_must_pair_one_to_one_with_the_models(inspect, inspector):
    inspection = inspect("SN-two", probability=0.9, regions=[MODEL_BOX, DENT])
    both, _ = save(inspection, inspector, boxes=[DENT, SHIFTED])
    assert both.source == LabelSource.MODEL_ACCEPTED
    # two boxes over the model's scratch and none over its dent do not pair up
    doubled, _ = save(inspection, inspector, boxes=[MODEL_BOX, SHIFTED])
    assert doubled.source == LabelSource.CORRECTION


def test_repeating_the_same_save_adds_nothing(defective, inspector, make_user, line):
    first, _ = save(defective, inspector, boxes=[DENT], note="n")
    again, created = save(defective, inspector, boxes=[DENT], note="n")
    assert (again.pk, created) == (first.pk, False)
    other = make_user("otto", "inspector", [line])
    confirmed, created = save(defective, other, boxes=[DENT], note="n")
    assert (confirmed.number, created) == (2, True)


BAD_INPUT = [
    ("defective", "not a list", "boxes must be a list"),
    ("defective", ["box"], "box 1 must be an object"),
    ("defective", [{**DENT, "x0": None}], "box 1: x0 must be a number"),
    ("defective", [{**DENT, "y1": "9"}], "box 1: y1 must be a number"),
    ("defective", [{**DENT, "x1": True}], "box 1: x1 must be a number"),
    ("defective", [{**DENT, "x0": float("nan")}], "box 1: x0 must be a finite number"),
    ("defective", [DENT, {**DENT, "x0": 95.0}], "box 2: needs 0 <= x0 < x1 <= 128"),
    ("defective", [{**DENT, "x0": 90.0}], "box 1: needs 0 <= x0 < x1"),
    ("defective", [{**DENT, "x1": 128.5}], "box 1: needs 0 <= x0 < x1 <= 128"),
    ("defective", [{**DENT, "y0": -1}], "box 1: needs 0 <= y0 < y1 <= 128"),
    ("defective", [{**DENT, "label": "rust"}], "box 1: class 'rust' is not one of"),
    ("defective", [{**DENT, "label": ["dent"]}], "is not one of the line's classes"),
    ("defective", [DENT] * (services.MAX_BOXES + 1), "at most 200 boxes"),
    ("", [], "image label must be one of ok, defective"),
    ("broken", [], "image label must be one of"),
    ("ok", [DENT], "an image labeled OK cannot have defect boxes"),
]


@pytest.mark.parametrize(("image_label", "boxes", "message"), BAD_INPUT)
def test_bad_labels_are_refused_and_nothing_is_stored(
    defective, inspector, image_label, boxes, message
):
    with pytest.raises(InvalidInput) as error:
        services.save_annotation(
            inspection=defective, author=inspector, image_label=image_label, boxes=boxes
        )
    assert message in error.value.message
    assert AnnotationRevision.objects.count() == 0


def test_a_too_long_note_is_refused(defective, inspector):
    with pytest.raises(InvalidInput, match="note must be text"):
        save(defective, inspector, note="x" * (services.MAX_NOTE_LENGTH + 1))
    assert AnnotationRevision.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_concurrent_saves_get_consecutive_numbers(defective, inspector):
    """Each thread has its own database connection; the inspection row lock serializes them."""
    errors = []
    start = threading.Barrier(4)

    def label(note):
        try:
            start.wait()
            save(defective, inspector, boxes=[DENT], note=note)
        except Exception as error:  # reported below, with the thread's error
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=label, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    numbers = sorted(AnnotationRevision.objects.values_list("number", flat=True))
    assert numbers == [1, 2, 3, 4]
