"""Two supervisors (or the gate and a supervisor) changing a line's model at the same moment:
the second one's check must see the first one's change, so a line never takes two promotions
made against the same active model."""

import threading
import time

import pytest
from django.db import close_old_connections, connection, transaction

from inspection.models import Line, LineChange
from ml import services
from ml.errors import ActiveModelChanged
from ml.models import ModelVersion
from tests.helpers import seed_model_version

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(line):
    """v-old serving the line; v-a and v-b, two candidates, both compared against v-old."""
    old, a, b = (seed_model_version(name) for name in ("v-old", "v-a", "v-b"))
    ModelVersion.objects.filter(pk__in=[old.pk, a.pk, b.pk]).update(line=line)
    services.set_active_version(line=line, model_version=old, changed_by="sam")
    return [ModelVersion.objects.get(pk=v.pk) for v in (old, a, b)]


def run_together(line, *changes):
    """Start every change while the line's row is locked, so they all reach their check
    before any of them can finish; then release the lock. Returns each one's outcome."""
    outcomes = [None] * len(changes)

    def attempt(index, change):
        try:
            change()
            outcomes[index] = "done"
        except ActiveModelChanged:
            outcomes[index] = "refused"
        finally:
            close_old_connections()
            connection.close()

    with transaction.atomic():
        Line.objects.select_for_update().get(pk=line.pk)
        threads = [
            threading.Thread(target=attempt, args=(i, change)) for i, change in enumerate(changes)
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # each change is now waiting on the line, or has passed its check
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


def promote(version, expected, who):
    return lambda: services.promote_model_version(
        model_version=version, changed_by=who, expected_active=expected
    )


def test_two_promotions_against_the_same_active_model_take_effect_once(line, served):
    old, a, b = served
    outcomes = run_together(
        line,
        promote(a, old, "ann"),
        promote(b, old, "bob"),
    )
    assert sorted(outcomes) == ["done", "refused"]
    switches = LineChange.objects.filter(line=line, field="active_model").order_by("pk")
    # the first activation of v-old, then exactly one promotion made against v-old
    assert [c.old_value for c in switches] == ["", "v-old"]


def test_a_promotion_and_a_rollback_at_once_do_not_both_apply(line, served):
    old, a, b = served
    services.promote_model_version(model_version=a, changed_by="ann", expected_active=old)
    a.refresh_from_db()
    outcomes = run_together(
        line,
        promote(b, a, "bob"),
        lambda: services.rollback_line(line=line, expected_active=a, changed_by="sam"),
    )
    assert sorted(outcomes) == ["done", "refused"]
    changes_after_a = LineChange.objects.filter(
        line=line, field="active_model", old_value="v-a"
    ).count()
    assert changes_after_a == 1
