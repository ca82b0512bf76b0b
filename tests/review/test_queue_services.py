"""The review queue's rules: exclusive claims that lapse, decisions recorded once, undo."""

from datetime import timedelta

import pytest
from django.utils import timezone

from inspection.models import Decision, InspectionStatus, ReviewItem
from inspection.selectors import visible_review_items
from review import services
from review.errors import AlreadyDecided, ClaimedByOther, UndoNotAllowed
from review.models import ReviewAction, ReviewEvent


def claim(user, exclude=()):
    return services.claim_next_item(user=user, items=visible_review_items(user), exclude=exclude)


def test_claims_oldest_first_and_never_the_same_item_twice(queue, make_user):
    line, items = queue(3)
    ana, ben = make_user("ana", lines=[line]), make_user("ben", lines=[line])
    first = claim(ana)
    second = claim(ben)
    third = claim(ana, exclude=[first.pk])
    assert [first.pk, second.pk, third.pk] == [items[0].pk, items[1].pk, items[2].pk]
    assert claim(ben, exclude=[second.pk]) is None


def test_a_reloaded_page_gets_its_own_claim_back_first(queue, make_user):
    line, items = queue(2)
    ana = make_user("ana", lines=[line])
    assert claim(ana).pk == items[0].pk
    assert claim(ana).pk == items[0].pk


def test_a_lapsed_claim_returns_the_item_to_the_queue(queue, make_user, settings):
    line, items = queue(1)
    ana, ben = make_user("ana", lines=[line]), make_user("ben", lines=[line])
    assert claim(ana).pk == items[0].pk
    assert claim(ben) is None
    ReviewItem.objects.filter(pk=items[0].pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.LOUPE_REVIEW_CLAIM_S + 1)
    )
    assert claim(ben).pk == items[0].pk
    assert services.keep_claim(item=items[0], user=ana) is False


def test_keeping_a_claim_pushes_its_expiry(queue, make_user, settings):
    line, items = queue(1)
    ana = make_user("ana", lines=[line])
    claim(ana)
    old = timezone.now() - timedelta(seconds=settings.LOUPE_REVIEW_CLAIM_S - 5)
    ReviewItem.objects.filter(pk=items[0].pk).update(claimed_at=old)
    assert services.keep_claim(item=items[0], user=ana) is True
    assert ReviewItem.objects.get(pk=items[0].pk).claimed_at > old


def test_released_item_goes_to_the_next_inspector(queue, make_user):
    line, items = queue(1)
    ana, ben = make_user("ana", lines=[line]), make_user("ben", lines=[line])
    claim(ana)
    services.release_claim(item=items[0], user=ana)
    assert claim(ben).pk == items[0].pk


def test_items_of_other_lines_are_never_claimed(queue, make_user):
    line_a, _ = queue(1, name="line-a")
    line_b, items_b = queue(1, name="line-b")
    ben = make_user("ben", lines=[line_b])
    assert claim(ben).pk == items_b[0].pk
    assert claim(ben, exclude=[items_b[0].pk]) is None


def test_decision_becomes_final_with_time_spent_and_history(queue, make_user):
    line, items = queue(1)
    ana = make_user("ana", lines=[line])
    item = claim(ana)
    services.decide_review_item(item=item, inspector=ana, outcome="reject", time_spent_ms=1234)
    item.refresh_from_db()
    assert (item.state, item.decision, item.time_spent_ms) == ("decided", "reject", 1234)
    decision = Decision.objects.get(inspection=item.inspection)
    assert (decision.outcome, decision.decided_by, decision.inspector) == ("reject", "human", ana)
    assert item.inspection.__class__.objects.get(pk=item.inspection_id).status == "decided"
    event = ReviewEvent.objects.get(item=item)
    assert (event.action, event.outcome, event.time_spent_ms) == ("decided", "reject", 1234)


def test_an_item_held_by_someone_else_cannot_be_decided(queue, make_user):
    line, items = queue(1)
    ana, ben = make_user("ana", lines=[line]), make_user("ben", lines=[line])
    item = claim(ana)
    with pytest.raises(ClaimedByOther):
        services.decide_review_item(item=item, inspector=ben, outcome="accept")
    assert not Decision.objects.exists()


def test_a_second_decision_is_refused_and_a_retry_changes_nothing(queue, make_user):
    line, items = queue(1)
    ana, ben = make_user("ana", lines=[line]), make_user("ben", lines=[line])
    item = claim(ana)
    services.decide_review_item(item=item, inspector=ana, outcome="accept")
    services.decide_review_item(item=item, inspector=ana, outcome="accept")  # retried request
    with pytest.raises(AlreadyDecided):
        services.decide_review_item(item=item, inspector=ben, outcome="reject")
    assert Decision.objects.count() == 1
    assert ReviewEvent.objects.filter(action=ReviewAction.DECIDED).count() == 1


def test_undo_within_the_window_reopens_the_item_for_its_inspector(queue, make_user):
    line, items = queue(1)
    ana, ben = make_user("ana", lines=[line]), make_user("ben", lines=[line])
    item = claim(ana)
    services.decide_review_item(item=item, inspector=ana, outcome="reject")
    with pytest.raises(UndoNotAllowed):
        services.undo_decision(item=item, user=ben)
    services.undo_decision(item=item, user=ana)
    item.refresh_from_db()
    assert (item.state, item.decision, item.assigned_to) == ("open", "", ana)
    assert not Decision.objects.exists()
    assert item.inspection.__class__.objects.get(pk=item.inspection_id).status == (
        InspectionStatus.IN_REVIEW
    )
    assert claim(ben) is None  # still held by ana
    services.decide_review_item(item=item, inspector=ana, outcome="accept")
    assert Decision.objects.get().outcome == "accept"
    actions = list(ReviewEvent.objects.values_list("action", "outcome"))
    assert actions == [("decided", "reject"), ("undone", ""), ("decided", "accept")]


def test_undo_after_the_window_is_refused(queue, make_user, settings):
    line, items = queue(1)
    ana = make_user("ana", lines=[line])
    item = claim(ana)
    services.decide_review_item(item=item, inspector=ana, outcome="reject")
    ReviewItem.objects.filter(pk=item.pk).update(
        decided_at=timezone.now() - timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    )
    with pytest.raises(UndoNotAllowed):
        services.undo_decision(item=item, user=ana)
    assert Decision.objects.get().outcome == "reject"


@pytest.mark.django_db(transaction=True)
def test_inspectors_claiming_at_the_same_moment_get_different_items(queue, make_user):
    """Eight threads, eight database connections, one barrier: every claim is a different item."""
    import threading

    from django.db import connection

    line, items = queue(8)
    users = [make_user(f"user{i}", lines=[line]) for i in range(8)]
    barrier = threading.Barrier(len(users))
    claimed = []

    def work(user):
        try:
            barrier.wait()
            item = claim(user)
            claimed.append(item.pk if item else None)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == sorted(item.pk for item in items)
