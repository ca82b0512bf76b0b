"""`manage.py measure_labeling_queue --quick`: the reduced measurement of the labeling queue's
order, its JSON, and the row its page reads."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from demo.labeling_measure import QUICK, MeasureSettings, verdict
from ml.models import QueueMeasurement

pytestmark = pytest.mark.django_db


@pytest.mark.slow
def test_the_queue_puts_the_new_type_first_and_the_result_is_printed_and_stored(tmp_path):
    out, log = io.StringIO(), io.StringIO()
    call_command(
        "measure_labeling_queue", "--quick", "--work-dir", str(tmp_path), stdout=out, stderr=log
    )
    result = json.loads(out.getvalue())
    assert set(result) >= {
        "settings",
        "strategy",
        "target_recall",
        "pool",
        "first_model",
        "orders",
        "verdict",
        "seconds",
        "measurement",
    }
    assert set(result["orders"]) == {"queue", "random"}  # arrival only when asked
    steps = list(QUICK.steps)
    for order in result["orders"].values():
        assert [p["labeled"] for p in order["curve"]] == steps
        for point in order["curve"]:
            assert set(point) == {"labeled", "new_type_labeled", "new_type_recall", "auroc"}
            assert 0 <= point["new_type_recall"] <= 1 and 0 <= point["auroc"] <= 1
        assert set(order) >= {"labeled_to_reach", "new_type_labeled_to_reach"}

    # what the queue is for: among the first items a human labels, far more of the new type
    # than chance gives. A random order of this pool has, on average, fraction x items of it
    # (sd about 2 items here); the queue must hold twice that and more than random order
    labeled = steps[-1]
    share = result["pool"]["new_type_items_median"] / result["pool"]["items"]
    queue = result["orders"]["queue"]["curve"][-1]["new_type_labeled"]
    random = result["orders"]["random"]["curve"][-1]["new_type_labeled"]
    print(f"new type among the first {labeled}: queue {queue}, random {random}, {share:.2f}")
    assert queue >= 2 * share * labeled
    assert queue > random

    stored = QueueMeasurement.objects.get(pk=result["measurement"])
    assert stored.result["orders"] == result["orders"]
    assert stored.params["quick"] is True
    assert stored.params["strategy"]["novelty_weight"] == result["strategy"]["novelty_weight"]


def test_the_verdict_counts_an_order_that_never_reaches_the_target_as_needing_more():
    s = MeasureSettings(steps=(10, 20, 40, 80), pool_images=100)

    def order(reach, new_type=None):
        return {"labeled_to_reach": reach, "new_type_labeled_to_reach": new_type}

    never = verdict({"queue": order(40, 30), "random": order(None)}, s)
    assert never["at_most_half_of_random"] is True  # 40 <= 81 / 2
    assert never["at_most_50_new_type_items"] is True
    close = verdict({"queue": order(40, 51), "random": order(60)}, s)
    assert close["at_most_half_of_random"] is False
    assert close["at_most_50_new_type_items"] is False
    assert verdict({"queue": order(None), "random": order(20)}, s)["queue_reaches_target"] is False


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "10,x"], "numbers separated by commas"),
        (["--steps", "30,20"], "increasing"),
        (["--pool", "20", "--steps", "10,40"], "exceeds the pool"),
        (["--seeds", "0"], "at least 1"),
        (["--orders", "queue,arrival"], "queue, random"),
        (["--orders", "queue,random,alphabetical"], "queue, random"),
    ],
)
def test_bad_options_are_refused_before_any_work(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("measure_labeling_queue", "--quick", *args, stdout=io.StringIO())
    assert not QueueMeasurement.objects.exists()
