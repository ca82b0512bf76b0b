"""The data loop, end to end: a new defect type, inspectors' corrections, a retraining the
policy starts, and a candidate the gate passes, which starts as a mirror challenger beside the
active model at the automatic level (demo.loop_scenario, also `manage.py demo_loop`).
"""

import pytest

from demo.loop_scenario import LoopSettings, run_loop, table

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_corrections_teach_the_line_a_new_defect_type(tmp_path, capsys):
    settings = LoopSettings()
    result = run_loop(work_dir=tmp_path, settings=settings)
    print(table(result, settings))
    print(result.seconds)

    # the premise: the active model misses most of the new type
    assert result.before["new_type_recall"] < 0.5
    assert result.new_type_corrections <= settings.max_new_type_corrections
    assert result.after["new_type_recall"] >= 0.90
    assert result.after["new_type_recall"] > result.before["new_type_recall"]
    assert result.after["auroc"] >= result.before["auroc"]
    assert (result.released, result.released_by) == ("mirror challenger", "gate")
    assert result.gate["passed"] is True
