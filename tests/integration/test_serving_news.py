"""What a line serves changed: every listening process hears it through Redis once the change
commits, and not when it rolls back."""

import threading

import pytest
from django.db import transaction

from inspection import serving_news

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_committed_change_reaches_a_listener_and_a_rolled_back_one_does_not(real_services):
    heard = threading.Event()
    serving_news.listen(heard.set, timeout_s=60)
    assert heard.wait(10)  # its first look, as it subscribes
    heard.clear()

    class Undone(Exception):
        pass

    with pytest.raises(Undone), transaction.atomic():
        serving_news.announce_change()
        raise Undone
    assert not heard.wait(1.5)

    with transaction.atomic():
        serving_news.announce_change()
        assert not heard.wait(0.5)  # nothing before the commit
    assert heard.wait(5)


def test_an_audit_entry_about_serving_announces_and_one_about_members_does_not(
    real_services, make_line, monkeypatch
):
    from inspection.audit_log import record_line_change

    published = []
    monkeypatch.setattr(serving_news, "_publish", lambda: published.append(True))
    line = make_line(name="news")
    record_line_change(line, "members", "", "+ines", "sam")
    record_line_change(line, "automation_level", "human_only", "shadow", "sam")
    record_line_change(line, "rollout", None, "mirror v2 0 (running)", "sam")
    assert published == [True, True]
