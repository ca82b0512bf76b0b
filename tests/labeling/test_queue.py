"""labeling.queue: what goes on the labeling queue, in which order, who gets which item, and
when an item is done. Against PostgreSQL (the partial unique index and the claims' UPDATEs)."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from inspection.models import Escape, Line, ReviewItem
from inspection.selectors import visible_lines
from labeling import queue, review_labels, services
from labeling.models import QueueEntry, QueueRefresh, QueueState
from loupe.common.errors import InvalidInput
from review.services import decide_review_item, undo_decision
from tests.helpers import seed_inspection
from tests.labeling.conftest import MODEL_BOX


def save(inspection, author, image_label="defective", boxes=()):
    return services.save_annotation(
        inspection=inspection, author=author, image_label=image_label, boxes=list(boxes)
    )


def claim(user, lines=None, exclude=()):
    return queue.claim_next(
        user=user, entries=queue.open_entries(lines or Line.objects.all()), exclude=exclude
    )


def open_kinds() -> dict[str, str]:
    return dict(
        QueueEntry.objects.filter(state="open").values_list("inspection__external_id", "kind")
    )


@pytest.fixture
def labeler(make_user, line):
    return make_user("lara", "inspector", [line])


@pytest.fixture
def other_labeler(make_user, line):
    return make_user("otto", "data_team", [line])


# Adding -------------------------------------------------------------------------------------


def test_add_to_queue_puts_each_item_on_once_and_says_how_many(inspect):
    items = [inspect(f"SN-{i}") for i in range(3)]

    assert queue.add_to_queue(inspections=items, kind="batch", details={"batch": 7}) == 3
    assert queue.add_to_queue(inspections=items, kind="batch", details={"batch": 7}) == 0

    entries = QueueEntry.objects.order_by("inspection_id")
    assert [e.inspection_id for e in entries] == [i.pk for i in items]
    assert {(e.kind, e.state, e.line_id, e.details["batch"]) for e in entries} == {
        ("batch", "open", items[0].line_id, 7)
    }


@pytest.mark.parametrize(
    "kind, details, message",
    [
        ("nonsense", None, "kind must be one of"),
        ("batch", ["x"], "details must be a JSON object"),
        ("batch", {"when": object()}, "details must be plain JSON"),
        ("batch", {"p": float("nan")}, "details must be plain JSON"),
    ],
)
def test_add_to_queue_refuses_bad_input_and_stores_nothing(inspect, kind, details, message):
    with pytest.raises(InvalidInput, match=message):
        queue.add_to_queue(inspections=[inspect("SN-1")], kind=kind, details=details)
    assert not QueueEntry.objects.exists()


def test_one_open_entry_per_item_which_moves_up_to_a_more_urgent_kind(inspect):
    item = inspect("SN-1")
    queue.add_to_queue(inspections=[item], kind="batch")
    queue.add_to_queue(inspections=[item], kind="escape", details={"why": "escape"})
    queue.add_to_queue(inspections=[item], kind="boxless")  # less urgent: changes nothing

    entry = QueueEntry.objects.get()
    assert (entry.kind, entry.priority, entry.details) == ("escape", 400, {"why": "escape"})


def test_the_database_refuses_a_second_open_entry_for_an_item(inspect):
    from django.db import IntegrityError

    item = inspect("SN-1")
    queue.add_to_queue(inspections=[item], kind="batch")
    with pytest.raises(IntegrityError):
        QueueEntry.objects.create(
            line=item.line, inspection=item, kind="boxless", priority=200, details={}
        )


# Order and claims ---------------------------------------------------------------------------


def test_claims_come_in_priority_order_then_by_active_learning_score(inspect, labeler, line):
    rows = [
        ("AL-low", "uncertain", 0.3),
        ("BATCH", "batch", 0.0),
        ("AL-high", "novel", 0.9),
        ("BOXLESS", "boxless", 0.0),
        ("ESCAPE", "escape", 0.0),
        ("DISAGREE", "disagreement", 0.0),
    ]
    queue.add_entries([(inspect(name), line.pk, kind, score, {}) for name, kind, score in rows])

    order = []
    while (entry := claim(labeler)) is not None:
        order.append(entry.inspection.external_id)
        save(entry.inspection, labeler, "ok")  # done: the next claim moves on
    assert order == ["ESCAPE", "DISAGREE", "BOXLESS", "BATCH", "AL-high", "AL-low"]


def test_two_labelers_never_get_the_same_item_and_a_lapsed_claim_frees_it(
    inspect, labeler, other_labeler, settings
):
    queue.add_to_queue(inspections=[inspect("SN-1"), inspect("SN-2")], kind="batch")

    first = claim(labeler)
    second = claim(other_labeler)
    assert first.pk != second.pk
    assert claim(other_labeler, exclude=[second.pk]) is None  # nothing free
    # a reloaded page gets its own item back first
    assert claim(labeler).pk == first.pk

    QueueEntry.objects.filter(pk=first.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.LOUPE_REVIEW_CLAIM_S + 1)
    )
    assert claim(other_labeler, exclude=[second.pk]).pk == first.pk
    assert queue.keep_claim(entry=first, user=labeler) is False  # someone else has it now


def test_keep_release_and_the_held_entry(inspect, labeler, other_labeler):
    item = inspect("SN-1")
    queue.add_to_queue(inspections=[item], kind="batch")
    entry = claim(labeler)

    assert queue.held_entry(inspection=item, user=labeler).pk == entry.pk
    assert queue.held_entry(inspection=item, user=other_labeler) is None
    assert queue.keep_claim(entry=entry, user=labeler) is True
    assert queue.release_claim(entry=entry, user=other_labeler) is False
    assert queue.release_claim(entry=entry, user=labeler) is True
    entry.refresh_from_db()
    assert (entry.assigned_to, entry.claimed_at) == (None, None)
    assert claim(other_labeler).pk == entry.pk


def test_a_claim_lost_between_reading_and_updating_moves_on_to_the_next(
    inspect, labeler, other_labeler, monkeypatch
):
    queue.add_to_queue(inspections=[inspect("SN-1"), inspect("SN-2")], kind="batch")
    first_pk = QueueEntry.objects.order_by("pk").first().pk
    real = queue._claimable_by
    calls = []

    def racing(user):
        calls.append(user)
        if len(calls) == 2:  # the labeler read the candidates; the other one claims first
            QueueEntry.objects.filter(pk=first_pk).update(
                assigned_to=other_labeler, claimed_at=timezone.now()
            )
        return real(user)

    monkeypatch.setattr(queue, "_claimable_by", racing)
    entry = claim(labeler)

    assert entry.pk != first_pk
    assert QueueEntry.objects.get(pk=first_pk).assigned_to == other_labeler


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_hand_out_each_item_once(make_line, station_with_token, make_user):
    line = make_line(name="line-c")
    station = station_with_token(line)[0]
    queue.add_to_queue(
        inspections=[seed_inspection(station, f"SN-{i}") for i in range(6)], kind="batch"
    )
    users = [make_user(f"u{i}", "inspector", [line]) for i in range(6)]
    got, barrier = [], threading.Barrier(len(users))

    def work(user):
        try:
            barrier.wait()
            entry = claim(user)
            got.append(entry.pk if entry else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert None not in got
    assert len(set(got)) == 6


def test_each_line_sees_only_its_own_queue(make_line, station_with_token, make_user, inspect):
    other = make_line(name="line-b")
    other_item = seed_inspection(station_with_token(other)[0], "B-1")
    queue.add_to_queue(inspections=[other_item, inspect("A-1")], kind="batch")
    user_a = make_user("ana", "inspector", [Line.objects.get(name="line-a")])

    entry = claim(user_a, lines=visible_lines(user_a))
    assert entry.inspection.external_id == "A-1"
    save(entry.inspection, user_a, "ok")
    assert claim(user_a, lines=visible_lines(user_a)) is None
    assert queue.open_counts(visible_lines(user_a)) == {}
    assert queue.open_counts(Line.objects.filter(pk=other.pk)) == {other.pk: {"batch": 1}}


# Done ---------------------------------------------------------------------------------------


def test_a_revision_saved_in_the_editor_finishes_the_entry_whoever_held_it(
    inspect, labeler, other_labeler
):
    item = inspect("SN-1")
    queue.add_to_queue(inspections=[item], kind="batch")
    claim(labeler)

    save(item, other_labeler, boxes=[MODEL_BOX])

    entry = QueueEntry.objects.get()
    assert (entry.state, entry.done_by) == (QueueState.DONE, other_labeler)
    assert entry.done_at is not None
    assert queue.done_counts(user=other_labeler, since=timezone.now() - timedelta(hours=1)) == {
        "batch": 1
    }
    assert queue.done_counts(user=labeler, since=timezone.now() - timedelta(hours=1)) == {}


def test_a_refused_save_leaves_the_entry_open(inspect, labeler):
    item = inspect("SN-1")
    queue.add_to_queue(inspections=[item], kind="batch")
    with pytest.raises(InvalidInput):
        save(item, labeler, "ok", boxes=[MODEL_BOX])
    assert QueueEntry.objects.get().state == QueueState.OPEN


# Sources ------------------------------------------------------------------------------------


def settle_decisions():
    """Let the undo window pass for every review decision and escape so far."""
    passed = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    ReviewItem.objects.filter(decided_at__isnull=False).update(decided_at=F("decided_at") - passed)
    Escape.objects.update(recorded_at=F("recorded_at") - passed)


def test_an_audit_escape_is_queued_first_and_once(
    make_line, station_with_token, model, inspector, labeler
):
    line = make_line(name="line-full", level="full", audit_fraction=1.0)
    line.members.add(inspector, labeler)
    item = seed_inspection(
        station_with_token(line)[0], "SN-1", probability=0.05, model_version=model
    )
    queue.add_to_queue(inspections=[item], kind="uncertain")
    # the audit finds a defect the model accepted: inspection.escapes records the escape
    decide_review_item(item=item.review_item, inspector=inspector, outcome="reject")
    assert item.escape.source == "audit"
    # not while the inspector can still undo: the queue would tell them the model disagreed
    assert queue.refresh_line_queue(line)["escape"] == 0
    settle_decisions()

    assert queue.refresh_line_queue(line)["escape"] == 1
    assert open_kinds() == {"SN-1": "escape"}  # moved up from active learning's pick
    assert queue.refresh_line_queue(line)["escape"] == 0
    save(item, labeler, boxes=[MODEL_BOX])
    assert queue.refresh_line_queue(line)["escape"] == 0
    assert open_kinds() == {}


def test_an_escape_undone_with_its_audit_reject_leaves_the_queue(
    make_line, station_with_token, model, inspector
):
    line = make_line(name="line-full", level="full", audit_fraction=1.0)
    line.members.add(inspector)
    item = seed_inspection(
        station_with_token(line)[0], "SN-1", probability=0.05, model_version=model
    )
    decided = decide_review_item(item=item.review_item, inspector=inspector, outcome="reject")
    queue.refresh_line_queue(line)
    assert open_kinds() == {}  # within the undo window the escape is not queued yet

    undo_decision(item=decided, user=inspector)  # taken back: no escape after all
    settle_decisions()
    assert queue.refresh_line_queue(line)["escape"] == 0
    assert not QueueEntry.objects.exists()

    decide_review_item(item=decided, inspector=inspector, outcome="reject")  # found again
    settle_decisions()
    assert queue.refresh_line_queue(line)["escape"] == 1
    assert open_kinds() == {"SN-1": "escape"}


def test_review_and_editor_disagreements_are_queued_until_settled(
    inspect, inspector, labeler, line
):
    item = inspect("SN-1", probability=0.9, regions=[MODEL_BOX])
    save(item, labeler, "ok")  # the editor says OK...
    decided = decide_review_item(item=item.review_item, inspector=inspector, outcome="reject")
    review_labels.label_decision(item.decision.pk)  # ...the review decision says defective
    assert decided.model_agrees is True

    assert queue.refresh_line_queue(line)["disagreement"] == 1
    entry = QueueEntry.objects.get(state="open")
    assert (entry.kind, entry.details["between"]) == ("disagreement", "review_and_editor")
    assert queue.refresh_line_queue(line)["disagreement"] == 0  # never twice

    save(item, labeler, boxes=[MODEL_BOX])  # settles the mark and finishes the entry
    assert queue.refresh_line_queue(line)["disagreement"] == 0
    assert open_kinds() == {}


def test_a_review_decision_against_the_model_is_a_disagreement(inspect, inspector, line):
    agrees = inspect("SN-agrees", probability=0.9, regions=[MODEL_BOX])
    against = inspect("SN-against", probability=0.1)
    decide_review_item(item=agrees.review_item, inspector=inspector, outcome="reject")
    decide_review_item(item=against.review_item, inspector=inspector, outcome="reject")
    queue.refresh_line_queue(line)
    assert "SN-against" not in open_kinds()  # not before the decision is final
    settle_decisions()

    queue.refresh_line_queue(line)

    assert open_kinds()["SN-against"] == "disagreement"
    assert open_kinds().get("SN-agrees") != "disagreement"
    assert QueueEntry.objects.get(inspection=against).details["between"] == "review_and_model"


def test_defective_labels_without_boxes_are_queued_and_a_new_one_queues_again(
    inspect, labeler, other_labeler, line
):
    item = inspect("SN-1")
    save(item, labeler)  # D, no box

    assert queue.refresh_line_queue(line)["boxless"] == 1
    save(item, labeler)  # the labeler confirms: cannot be boxed; the entry is done
    assert QueueEntry.objects.get().state == QueueState.DONE
    assert queue.refresh_line_queue(line)["boxless"] == 0

    save(item, other_labeler)  # a later box-less label is a new event
    assert queue.refresh_line_queue(line)["boxless"] == 1
    save(item, other_labeler, boxes=[MODEL_BOX])
    assert queue.refresh_line_queue(line)["boxless"] == 0
    assert QueueEntry.objects.filter(state="done").count() == 2


def test_a_review_reject_without_boxes_is_queued_for_boxes(inspect, inspector, line):
    item = inspect("SN-1", probability=0.9, regions=[MODEL_BOX])  # the model agrees
    decide_review_item(item=item.review_item, inspector=inspector, outcome="reject")
    review_labels.label_decision(item.decision.pk)

    assert queue.refresh_line_queue(line)["boxless"] == 1
    assert "review decision" in QueueEntry.objects.get().details["why"]


def test_a_refresh_without_a_model_records_itself_and_keeps_claimed_picks(inspect, labeler, line):
    kept, dropped = inspect("AL-kept"), inspect("AL-dropped")
    queue.add_entries(
        [(kept.pk, line.pk, "novel", 0.8, {}), (dropped.pk, line.pk, "uncertain", 0.5, {})]
    )
    claim(labeler)

    result = queue.replace_active_learning_entries(line=line, picks=[])
    assert result == {"added": 0, "updated": 0, "removed": 1}
    assert open_kinds() == {"AL-kept": "novel"}

    queue.refresh_line_queue(line)
    refresh = QueueRefresh.objects.get(line=line)
    assert refresh.result["active_learning"]["status"] == "no_model"
    assert refresh.strategy["pool"]["days"] == 7
