"""The rollout's side-by-side report: each model judged on what humans decided."""

import pytest

from inspection import services
from inspection.models import Prediction, PredictionRole
from inspection.rollouts import start_rollout
from labeling.services import save_annotation
from ml import services as ml_services
from monitoring.challenger_report import Judged, model_figures, paired_figures, rollout_report
from review.services import decide_review_item
from tests.helpers import seed_inspection, seed_model_version


def judged(number, p, human, *, ms=5.0, unbiased=True):
    return Judged(number, p, 0.5, ms, human, unbiased)


def test_a_models_figures_count_escapes_over_defective_and_false_rejects_over_good_items():
    items = (
        [judged(i, 0.9, "reject") for i in range(6)]  # caught
        + [judged(i, 0.1, "reject") for i in range(6, 8)]  # escapes
        + [judged(i, 0.1, "accept") for i in range(8, 17)]  # right accepts
        + [judged(17, 0.9, "accept")]  # a false reject
        + [judged(i, 0.2, "", ms=50.0) for i in range(18, 20)]  # nobody checked these
    )
    figures = model_figures(items)
    assert (figures["items"], figures["checked"]) == (20, 18)
    assert (figures["escape"]["count"], figures["escape"]["n"]) == (2, 8)
    assert (figures["false_reject"]["count"], figures["false_reject"]["n"]) == (1, 10)
    assert (figures["agreement"]["count"], figures["agreement"]["n"]) == (15, 18)
    assert figures["escape"]["low_pct"] < 25.0 < figures["escape"]["high_pct"]
    p50, p99 = figures["latency_ms"]["p50"], figures["latency_ms"]["p99"]
    assert p50["value"] == 5.0 and p50["n"] == 20 and p99["value"] > 40
    # 18 of 20 at 5 ms: the median's interval is 5 to 5; 20 items cannot bound the p99 above
    assert (p50["low"], p50["high"]) == (5.0, 5.0)
    assert p99["high"] is None


def test_a_latency_quantile_interval_holds_the_true_quantile_about_95_times_in_100():
    import numpy as np

    from monitoring.challenger_report import quantile

    rng = np.random.default_rng(3)
    misses = 0
    for _ in range(400):
        sample = rng.exponential(10.0, size=200)  # true median 10 ln 2
        interval = quantile(list(sample), 0.5)
        misses += not interval["low"] <= 10 * np.log(2) <= interval["high"]
    assert 4 <= misses <= 36  # 5% of 400 is 20; a binomial's 99.9% range is about 5 to 37


def test_mcnemar_tells_a_worse_challenger_from_a_tie_on_the_same_items():
    active = [judged(i, 0.9, "reject") for i in range(30)]
    worse = [judged(i, 0.1 if i < 12 else 0.9, "reject") for i in range(30)]
    figures = paired_figures(active, worse)
    assert (figures["active_only_right"], figures["challenger_only_right"]) == (12, 0)
    assert figures["mcnemar_p"] < 0.001
    assert figures["models_agree"]["count"] == 18
    tie = [judged(i, 0.1 if i < 3 else 0.9, "reject") for i in range(30)]
    active_tie = [judged(i, 0.1 if 3 <= i < 6 else 0.9, "reject") for i in range(30)]
    assert paired_figures(active_tie, tie)["mcnemar_p"] == 1.0


@pytest.mark.django_db
def test_a_mirror_report_compares_both_models_on_the_items_shadow_inspectors_decided(
    make_line, inspector
):
    line = make_line(name="mirror", level="shadow")
    incumbent, challenger = seed_model_version("incumbent"), seed_model_version("challenger")
    ml_services.set_active_version(line=line, model_version=incumbent, changed_by="test")
    station, _ = services.create_station(line=line, name="cam")
    start_rollout(line=line, challenger=challenger, mode="mirror", changed_by="sv")
    ines = inspector(line)
    for number in range(20):
        defective = number < 10
        item = seed_inspection(
            station, f"S{number}", probability=0.9 if defective else 0.1, model_version=incumbent
        )
        # the challenger misses the first four defects and is otherwise the incumbent
        Prediction.objects.create(
            inspection=item,
            model_version=challenger,
            role=PredictionRole.CHALLENGER,
            defect_probability=0.1 if number < 4 else (0.9 if defective else 0.1),
            latency_ms=7.0,
        )
        outcome = "reject" if defective else "accept"
        decide_review_item(item=item.review_item, inspector=ines, outcome=outcome)
        if defective and number % 2 == 0:  # half the defects labeled: scratches, with a box
            box = {"x0": 1, "y0": 1, "x1": 9, "y1": 9, "label": "scratch"}
            save_annotation(inspection=item, author=ines, image_label="defective", boxes=[box])
    report = rollout_report(line.rollouts.get())
    assert report["active"]["model"] == "incumbent"
    assert report["active"]["escape"]["count"] == 0
    assert (report["challenger"]["escape"]["count"], report["challenger"]["escape"]["n"]) == (4, 10)
    assert report["challenger"]["unbiased"] == 20  # shadow hides the model
    assert report["paired"]["active_only_right"] == 4
    assert report["paired"]["models_agree"]["count"] == 16
    assert report["challenger"]["latency_ms"]["p50"]["value"] == 7.0
    # per class, over the labeled defects only: items 0, 2 (missed), 4, 6, 8 (caught)
    scratch = report["challenger"]["per_class"]["scratch"]
    assert (scratch["count"], scratch["n"]) == (2, 5)
    assert report["active"]["per_class"]["scratch"]["count"] == 0
