"""Logins on shared terminals: throttled by user name and address, with a lockout an admin
clears; strong passwords; sessions that end when idle or when the browser closes."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from accounts.services import create_user
from loupe.common.errors import InvalidInput

PASSWORD = "a-long-password-42"


@pytest.fixture
def ana(make_line):
    make_line(name="line-a")
    return create_user(username="ana", role="inspector", line_names=["line-a"], password=PASSWORD)


def log_in(client, password, username="ana"):
    return client.post("/login/", {"username": username, "password": password})


def is_logged_in(client) -> bool:
    return client.get("/review/").status_code == 200


def test_five_failed_logins_lock_that_user_name_from_that_address(ana):
    client = Client(REMOTE_ADDR="10.0.0.7")
    for _ in range(4):
        assert log_in(client, "wrong-guess").status_code == 200
    locked = log_in(client, "wrong-guess")
    assert locked.status_code == 429
    # now even the right password is refused, and the page says why and for how long
    locked = log_in(client, PASSWORD)
    assert locked.status_code == 429
    page = locked.content.decode()
    assert "Too many failed logins" in page and "Try again in 15 minutes" in page
    assert 'value="ana"' in page
    assert not is_logged_in(client)
    # the same user on another terminal is not locked out
    other = Client(REMOTE_ADDR="10.0.0.8")
    assert log_in(other, PASSWORD).status_code == 302
    assert is_logged_in(other)


def test_an_admin_clears_a_lockout_with_the_command(ana):
    client = Client(REMOTE_ADDR="10.0.0.7")
    for _ in range(5):
        log_in(client, "wrong-guess")
    assert log_in(client, PASSWORD).status_code == 429
    call_command("axes_reset_username", "ana")
    assert log_in(client, PASSWORD).status_code == 302
    assert is_logged_in(client)


def test_admin_lists_and_clears_lockouts(ana, django_user_model):
    client = Client(REMOTE_ADDR="10.0.0.7")
    for _ in range(5):
        log_in(client, "wrong-guess")
    attempt = AccessAttempt.objects.get(username="ana")
    admin = create_user(username="root", role="admin", line_names=[], password=PASSWORD)
    staff = Client()
    staff.force_login(admin)
    listing = staff.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and "ana" in listing.content.decode()
    deleted = staff.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [attempt.pk], "post": "yes"},
    )
    assert deleted.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert log_in(client, PASSWORD).status_code == 302


def test_the_failure_limit_comes_from_settings(ana, settings):
    settings.AXES_FAILURE_LIMIT = 2
    client = Client()
    assert log_in(client, "wrong-guess").status_code == 200
    assert log_in(client, "wrong-guess").status_code == 429


@pytest.mark.parametrize(
    ("username", "password", "said"),
    [
        ("inspector", "loupe-inspector", "too similar to the username"),
        ("ana", "short-1", "at least 8 characters"),
        ("ana", "password123", "too common"),
        ("ana", "4815162342", "entirely numeric"),
    ],
)
def test_weak_passwords_are_refused(make_line, django_user_model, username, password, said):
    make_line(name="line-a")
    with pytest.raises(InvalidInput, match=said):
        create_user(username=username, role="inspector", line_names=["line-a"], password=password)
    assert not django_user_model.objects.exists()


def test_a_session_ends_when_the_browser_closes_and_after_30_idle_minutes(ana):
    client = Client()
    assert log_in(client, PASSWORD).status_code == 302
    cookie = client.cookies["sessionid"]
    assert cookie["expires"] == "" and cookie["max-age"] == ""  # a browser-session cookie
    session = Session.objects.get()
    left = session.expire_date - timezone.now()
    assert timedelta(minutes=29) < left <= timedelta(minutes=30)
    # 29 idle minutes: still logged in, and using a page renews the 30 minutes
    Session.objects.update(expire_date=timezone.now() + timedelta(minutes=1))
    assert is_logged_in(client)
    assert Session.objects.get().expire_date - timezone.now() > timedelta(minutes=29)
    # 30 idle minutes: logged out
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    answer = client.get("/review/")
    assert answer.status_code == 302 and answer["Location"].startswith("/login/")


def test_a_pages_timer_does_not_keep_its_session_alive(ana):
    client = Client()
    log_in(client, PASSWORD)
    soon = timezone.now() + timedelta(minutes=1)
    Session.objects.update(expire_date=soon)
    assert client.get("/review/", headers={"X-Loupe-Background": "1"}).status_code == 200
    assert Session.objects.get().expire_date == soon
