"""Active learning's picks on the labeling queue, with a real (tiny) trained model: the pool
is the line's recent live items nobody labeled in the editor, scored on the datasets queue."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection import services as inspection_services
from inspection.models import Inspection
from labeling import candidates, queue, services
from labeling.models import ACTIVE_LEARNING_KINDS, QueueEntry, QueueRefresh
from ml.services import set_active_version
from tests.helpers import seed_inspection

POOL = candidates.CandidatePool(days=7, max_items=100, picks=4, reference_items=50)


@pytest.fixture
def served_line(make_line, station_with_token, model_version):
    """A line at full automation serving the tiny model: its items are decided by the model,
    none waits in review (audits off)."""
    line = make_line(name="line-al", level="full", audit_fraction=0.0)
    set_active_version(line=line, model_version=model_version, changed_by="test")
    line.refresh_from_db()
    return line


@pytest.fixture
def items(served_line, station_with_token, model_version, make_user):
    station = station_with_token(served_line)[0]
    made = {
        f"SN-{i}": seed_inspection(station, f"SN-{i}", probability=0.1, model_version=model_version)
        for i in range(10)
    }
    labeler = make_user("lea", "inspector", [served_line])
    for name in ("SN-0", "SN-1", "SN-2"):  # labeled in the editor: the reference set
        services.save_annotation(inspection=made[name], author=labeler, image_label="ok", boxes=[])
    # old items and a batch image stay out of the pool
    Inspection.objects.filter(pk=made["SN-3"].pk).update(
        received_at=timezone.now() - timedelta(days=8)
    )
    batch_station = inspection_services.create_station(
        line=served_line, name=inspection_services.BATCH_STATION
    )[0]
    made["BATCH"] = seed_inspection(
        batch_station, "BATCH", probability=0.1, model_version=model_version
    )
    return made


def al_entries():
    return QueueEntry.objects.filter(state="open", kind__in=ACTIVE_LEARNING_KINDS).order_by(
        "-score"
    )


def test_the_pool_is_recent_live_unlabeled_items(served_line, items):
    names = set(candidates.pool_items(served_line, POOL).values_list("external_id", flat=True))
    assert names == {f"SN-{i}" for i in range(4, 10)}
    reference = set(
        candidates.reference_items(served_line, POOL).values_list("external_id", flat=True)
    )
    assert reference == {"SN-0", "SN-1", "SN-2"}


def test_a_refresh_scores_the_pool_with_the_lines_model_and_queues_the_top_picks(
    served_line, items, model_version
):
    result = queue.refresh_line_queue(served_line, pool=POOL)

    al = result["active_learning"]
    assert (al["status"], al["model"], al["pool_size"], al["reference_size"]) == (
        "picked",
        model_version.name,
        6,
        3,
    )
    entries = list(al_entries())
    assert len(entries) == 4 == al["added"]
    picked = {e.inspection.external_id for e in entries}
    assert picked <= {f"SN-{i}" for i in range(4, 10)}
    for entry in entries:
        assert entry.kind == entry.details["reason"]
        assert entry.details["model"] == model_version.name
        assert 0 <= entry.details["uncertainty"] <= 1 and 0 <= entry.details["novelty"] <= 1
        assert entry.details["why"].startswith(entry.kind)
    refresh = QueueRefresh.objects.get(line=served_line)
    assert refresh.strategy["pool"] == POOL.to_dict()
    assert refresh.strategy["name"]  # the strategy the page shows

    # again: the same picks are updated in place, never doubled
    again = queue.refresh_line_queue(served_line, pool=POOL)["active_learning"]
    assert (again["added"], again["removed"]) == (0, 0)
    assert {e.inspection.external_id for e in al_entries()} == picked


def test_a_labeled_pick_leaves_the_pool_and_the_next_refresh_picks_another(
    served_line, items, make_user
):
    queue.refresh_line_queue(served_line, pool=POOL)
    top = al_entries().first()
    labeler = make_user("lou", "inspector", [served_line])
    services.save_annotation(inspection=top.inspection, author=labeler, image_label="ok", boxes=[])

    result = queue.refresh_line_queue(served_line, pool=POOL)["active_learning"]

    assert result["pool_size"] == 5 and result["reference_size"] == 4
    assert top.inspection_id not in {e.inspection_id for e in al_entries()}
    top.refresh_from_db()
    assert top.state == "done"


def test_the_periodic_job_refreshes_every_line_on_the_datasets_queue(served_line, items):
    from datasets.limits import datasets_queue
    from labeling import tasks
    from loupe.periodic import periodic_jobs

    jobs = {j.task.name: j for j in periodic_jobs()}
    refresh = jobs["labeling.refresh_labeling_queues"]
    sync = jobs["labeling.sync_queue_sources"]
    assert (refresh.every_s, sync.every_s) == (900.0, 60.0)
    assert refresh.queue == sync.queue == datasets_queue() != "inference"

    results = tasks.refresh_labeling_queues_task.apply().get()
    assert results["line-al"]["active_learning"]["status"] == "picked"
    assert al_entries().count() == 6  # the whole pool: fewer items than DEFAULT_POOL.picks


def test_the_minutely_sync_queues_flagged_items_without_scoring(served_line, items):
    from labeling import tasks

    labeled = items["SN-0"]  # labeled OK in the editor; a later box-less defective label
    labeler = labeled.annotations.get().author
    services.save_annotation(inspection=labeled, author=labeler, image_label="defective", boxes=[])

    results = tasks.sync_queue_sources_task.apply().get()

    assert results["line-al"] == {"dismissed": 0, "escape": 0, "disagreement": 0, "boxless": 1}
    assert QueueEntry.objects.get().kind == "boxless"
    assert not QueueRefresh.objects.exists()  # active learning waits for its own job


def test_the_refresh_button_sends_its_task_to_the_datasets_queue(served_line, monkeypatch):
    from labeling import tasks

    sent = []
    monkeypatch.setattr(
        tasks.refresh_line_queue_task, "apply_async", lambda *a, **kw: sent.append((a, kw))
    )
    tasks.send_refresh(served_line.pk)
    assert sent == [(((served_line.pk,),), {"queue": "datasets"})]
