"""Sessions on a shared terminal, in Chromium: an open review page's timer does not keep its
session alive, and once the session has ended the page goes to the login page by itself."""

from django.contrib.sessions.models import Session


def test_an_open_queue_does_not_renew_its_session_and_ends_on_the_login_page(
    make_line, make_user, login
):
    line = make_line(name="line-a")
    page = login(make_user("ana", "inspector", [line]))
    page.goto("/review/")
    page.wait_for_selector("#empty", state="visible")
    before = Session.objects.get().expire_date
    # the empty queue looks again every 5 s, as a background request
    with page.expect_request(lambda r: r.url.endswith("/review/claim"), timeout=10_000) as sent:
        pass
    assert sent.value.headers.get("x-loupe-background") == "1"
    sent.value.response()  # answered, and the session's end did not move
    assert Session.objects.get().expire_date == before
    Session.objects.all().delete()  # the idle limit passed
    page.wait_for_url("**/login/?next=%2Freview%2F", timeout=10_000)
