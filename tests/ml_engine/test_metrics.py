import pytest

from ml.engine.metrics import auroc, box_hit_rate
from ml.engine.types import Region


def box(x0, y0, x1, y1, label="spot"):
    return Region(x0, y0, x1, y1, label, 1.0)


def test_auroc_of_perfect_ranking_is_one():
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0


def test_auroc_of_reversed_ranking_is_zero():
    assert auroc([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]) == 0.0


def test_auroc_counts_one_misordered_pair():
    # pairs (pos, neg): (0.35,0.1) ok, (0.35,0.4) wrong, (0.8,0.1) ok, (0.8,0.4) ok
    assert auroc([0, 1, 0, 1], [0.1, 0.35, 0.4, 0.8]) == pytest.approx(0.75)


def test_auroc_counts_tied_scores_as_half():
    assert auroc([0, 1], [0.5, 0.5]) == 0.5
    # pos 0.5 ties neg 0.5 (half) and beats neg 0.2; pos 0.9 beats both
    assert auroc([0, 0, 1, 1], [0.2, 0.5, 0.5, 0.9]) == pytest.approx(3.5 / 4)


def test_auroc_with_all_scores_equal_is_one_half():
    assert auroc([0, 1, 1, 0, 1], [0.3] * 5) == 0.5


def test_auroc_needs_both_classes():
    with pytest.raises(ValueError, match="positive and one negative"):
        auroc([1, 1, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError):
        auroc([0, 0], [0.1, 0.2])


def test_auroc_rejects_mismatched_lengths_and_non_binary_labels():
    with pytest.raises(ValueError):
        auroc([0, 1], [0.1])
    with pytest.raises(ValueError):
        auroc([0, 2], [0.1, 0.2])


def test_box_hit_rate_counts_only_defective_images():
    truth = [[box(0, 0, 10, 10)], [], [box(50, 50, 60, 60)]]
    predicted = [[box(1, 1, 10, 10)], [box(0, 0, 5, 5)], []]
    assert box_hit_rate(truth, predicted) == 0.5


def test_box_hit_rate_applies_the_iou_threshold():
    truth = [[box(0, 0, 10, 10)]]
    half = [[box(5, 0, 15, 10)]]  # IoU 1/3
    assert box_hit_rate(truth, half, iou_threshold=0.3) == 1.0
    assert box_hit_rate(truth, half, iou_threshold=0.34) == 0.0


def test_box_hit_rate_needs_one_matching_pair_per_image_and_ignores_labels():
    truth = [[box(0, 0, 10, 10, "dent"), box(80, 80, 90, 90, "crack")]]
    predicted = [[box(30, 30, 40, 40), box(81, 81, 90, 90, "scratch")]]
    assert box_hit_rate(truth, predicted) == 1.0


def test_box_hit_rate_is_zero_when_nothing_is_predicted():
    assert box_hit_rate([[box(0, 0, 10, 10)], [box(0, 0, 4, 4)]], [[], []]) == 0.0


def test_box_hit_rate_needs_a_defective_image_and_aligned_inputs():
    with pytest.raises(ValueError, match="at least one image"):
        box_hit_rate([[], []], [[], []])
    with pytest.raises(ValueError):
        box_hit_rate([[box(0, 0, 1, 1)]], [])
