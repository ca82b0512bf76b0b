import pytest

from ml.engine.types import Region, box_iou


def box(x0, y0, x1, y1, label="spot", score=1.0):
    return Region(x0, y0, x1, y1, label, score)


def test_iou_of_identical_boxes_is_one():
    assert box(0, 0, 10, 10).iou(box(0, 0, 10, 10)) == 1.0


def test_iou_of_disjoint_and_touching_boxes_is_zero():
    assert box(0, 0, 10, 10).iou(box(20, 20, 30, 30)) == 0.0
    assert box(0, 0, 10, 10).iou(box(10, 0, 20, 10)) == 0.0


def test_iou_of_half_overlap_is_one_third():
    assert box(0, 0, 10, 10).iou(box(5, 0, 15, 10)) == pytest.approx(50 / 150)


def test_iou_of_contained_box_is_area_ratio():
    assert box(0, 0, 10, 10).iou(box(2, 2, 7, 7)) == pytest.approx(25 / 100)


def test_iou_ignores_labels_and_is_symmetric():
    a, b = box(0, 0, 10, 10, "dent"), box(3, 4, 12, 9, "crack")
    assert a.iou(b) == pytest.approx(b.iou(a))
    assert a.iou(b) > 0


def test_iou_of_degenerate_boxes_is_zero():
    assert box(5, 5, 5, 5).iou(box(5, 5, 5, 5)) == 0.0


def test_box_iou_takes_plain_corner_sequences_and_agrees_with_region_iou():
    a, b = (0, 0, 10, 10), [5.0, 0.0, 15.0, 10.0]
    assert box_iou(a, b) == pytest.approx(50 / 150)
    assert box_iou(a, b) == box(*a).iou(box(*b))
    assert box_iou(a, (20, 20, 30, 30)) == 0.0
    assert box_iou((5, 5, 5, 5), (5, 5, 5, 5)) == 0.0


def test_box_iou_counts_an_inverted_box_as_empty():
    assert box_iou((0, 0, 10, 10), (10, 10, 0, 0)) == 0.0


def test_to_dict_rounds_coordinates_to_two_and_score_to_four_decimals():
    region = Region(1.23456, 2.0, 30.999, 40.005001, "scratch", 0.876543)
    assert region.to_dict() == {
        "x0": 1.23,
        "y0": 2.0,
        "x1": 31.0,
        "y1": 40.01,
        "label": "scratch",
        "score": 0.8765,
    }


def test_region_is_frozen():
    with pytest.raises(AttributeError):
        box(0, 0, 1, 1).x0 = 3
