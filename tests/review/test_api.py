"""The review API for line-side terminals, over HTTP: an inspector's API token, the same claims,
roles and lines as the review page, clear 4xx answers that change nothing."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from inspection.models import Decision, ReviewItem, ReviewState
from review.models import ReviewAction, ReviewEvent
from tests.helpers import seed_inspection, seed_model_version

API = "/api/v1/review"
REGION = {"x0": 4.0, "y0": 6.0, "x1": 40.0, "y1": 30.0, "label": "scratch", "score": 0.8}


@pytest.fixture(autouse=True)
def own_media(settings, tmp_path):
    """The items' images are written apart from the shared media folder."""
    settings.MEDIA_ROOT = tmp_path / "media"


def terminal(raw_token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {raw_token}"} if raw_token else {}
    return Client(headers=headers)


def post(client, path, body=None, **extra):
    data = json.dumps({} if body is None else body)
    return client.post(API + path, data, content_type="application/json", **extra)


@pytest.fixture
def token_of():
    from accounts.tokens import issue_api_token

    def make(user) -> str:
        return issue_api_token(user=user, name=f"{user.username}'s terminal")[1]

    return make


@pytest.fixture
def line_a(queue, make_user, token_of):
    """line-a with 3 open items; Ana inspects it from her terminal."""
    line, items = queue(3)
    ana = make_user("ana", lines=[line])
    return line, items, ana, terminal(token_of(ana))


def unchanged(item) -> bool:
    item.refresh_from_db()
    return (
        item.state == ReviewState.OPEN
        and item.assigned_to_id is None
        and not Decision.objects.filter(inspection_id=item.inspection_id).exists()
    )


ITEM_CALLS = [
    ("post", "/items/{}/decide", {"decision": "reject"}),
    ("post", "/items/{}/undo", {}),
    ("post", "/items/{}/keep", {}),
    ("post", "/items/{}/release", {}),
    ("get", "/items/{}/image", None),
]


def call(client, method, path, body, pk):
    if method == "get":
        return client.get(API + path.format(pk))
    return post(client, path.format(pk), body)


# --- who may call it ----------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer lpu_not-a-token", "Basic YTpi"])
def test_without_a_valid_token_the_answer_is_401_with_a_bearer_challenge(line_a, authorization):
    _, items, _, _ = line_a
    client = Client(headers={"Authorization": authorization} if authorization else {})
    answer = post(client, "/next")
    assert answer.status_code == 401
    assert answer["WWW-Authenticate"] == 'Bearer realm="loupe-api"'
    assert answer.json()["error"] in ("not_authenticated", "authentication_failed")
    assert all(unchanged(item) for item in items)


def test_a_stations_token_opens_no_review_call(line_a, station_with_token):
    line, items, _, _ = line_a
    _, station_token = station_with_token(line, name="cam-2")
    answer = post(terminal(station_token), "/next")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "authentication_failed",
        "detail": "the API token is not valid",
    }
    assert all(unchanged(item) for item in items)


@pytest.mark.parametrize("method, path, body", [("post", "/next", {}), *ITEM_CALLS])
def test_a_data_team_token_is_refused_403_before_anything_is_looked_up(
    line_a, make_user, token_of, method, path, body
):
    line, items, _, _ = line_a
    dana = terminal(token_of(make_user("dana", role="data_team", lines=[line])))
    answer = call(dana, method, path, body, items[0].pk)
    assert answer.status_code == 403
    assert answer.json() == {
        "error": "permission_denied",
        "detail": "your role does not review items",
    }
    assert unchanged(items[0])


@pytest.mark.parametrize("method, path, body", ITEM_CALLS)
def test_an_inspector_of_another_line_does_not_find_the_item(
    line_a, queue, make_user, token_of, method, path, body
):
    _, items, _, _ = line_a
    line_b, _ = queue(1, name="line-b")
    bob = terminal(token_of(make_user("bob", lines=[line_b])))
    answer = call(bob, method, path, body, items[0].pk)
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    assert b"line-a" not in answer.content
    assert unchanged(items[0])


def test_naming_another_lines_queue_is_404_and_claims_nothing(line_a, queue, make_user, token_of):
    _, items, _, _ = line_a
    line_b, _ = queue(1, name="line-b")
    bob = terminal(token_of(make_user("bob", lines=[line_b])))
    answer = post(bob, "/next", {"line": "line-a"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "not_found", "detail": "no line of yours has this name"}
    assert all(unchanged(item) for item in items)


def test_a_session_post_without_its_csrf_token_is_refused(line_a):
    _, items, ana, _ = line_a
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(ana)
    answer = post(browser, "/next")
    assert answer.status_code == 403
    assert "CSRF" in answer.json()["detail"]
    assert all(unchanged(item) for item in items)
    # the review page's own script sends the token, and is let through
    browser.get("/review/")
    token = browser.cookies["csrftoken"].value
    assert post(browser, "/next", HTTP_X_CSRFTOKEN=token).json()["item"]["id"] == items[0].pk


# --- the flow -----------------------------------------------------------------------------


def test_next_decide_undo_as_a_terminal_does(line_a, settings):
    line, items, ana, ana_terminal = line_a
    first = post(ana_terminal, "/next")
    assert first.status_code == 200
    body = first.json()
    item = body["item"]
    assert body["open_count"] == 3
    assert item["id"] == items[0].pk and item["inspection_id"] == items[0].inspection_id
    assert (item["external_id"], item["line"], item["level"], item["reason"], item["state"]) == (
        "line-a-0",
        "line-a",
        "human_only",
        "every_item",
        "open",
    )
    assert item["model"] is None  # human_only: no model ran
    assert item["image_url"] == f"{API}/items/{items[0].pk}/image"
    assert item["claimed_until"] is not None
    # the terminal fetches the image with the same token, whatever it says it accepts
    image = ana_terminal.get(item["image_url"], HTTP_ACCEPT="image/png")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    stored = items[0].inspection
    assert (
        b"".join(image.streaming_content) == (settings.MEDIA_ROOT / stored.image.name).read_bytes()
    )
    # the same terminal asking again gets the item it holds back
    assert post(ana_terminal, "/next").json()["item"]["id"] == items[0].pk

    decided = post(ana_terminal, f"/items/{items[0].pk}/decide", {"decision": "reject"})
    assert decided.status_code == 200
    answer = decided.json()
    assert "model_agrees" not in answer
    assert (answer["id"], answer["state"], answer["decision"], answer["open_count"]) == (
        items[0].pk,
        "decided",
        "reject",
        2,
    )
    assert Decision.objects.get(inspection_id=items[0].inspection_id).outcome == "reject"

    undone = post(ana_terminal, f"/items/{items[0].pk}/undo")
    assert undone.status_code == 200
    assert undone.json()["item"]["state"] == "open" and undone.json()["open_count"] == 3
    assert not Decision.objects.exists()
    # undone, the item is still hers: the next call gives it back, and she decides again
    assert post(ana_terminal, "/next").json()["item"]["id"] == items[0].pk
    again = post(ana_terminal, f"/items/{items[0].pk}/decide", {"decision": "accept"})
    assert again.json()["decision"] == "accept"
    actions = list(ReviewEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == [ReviewAction.DECIDED, ReviewAction.UNDONE, ReviewAction.DECIDED]
    assert post(ana_terminal, "/next").json()["item"]["id"] == items[1].pk


def test_a_line_filter_takes_that_lines_items_only(line_a, queue):
    line, items, ana, ana_terminal = line_a
    line_b, items_b = queue(2, name="line-b")
    line_b.members.add(ana)
    answer = post(ana_terminal, "/next", {"line": "line-b"}).json()
    assert answer["item"]["id"] == items_b[0].pk and answer["open_count"] == 2
    assert post(ana_terminal, "/next").json()["item"]["id"] == items_b[0].pk  # held first
    whole = post(ana_terminal, "/next", {"exclude": [items_b[0].pk]}).json()
    assert whole["item"]["id"] == items[0].pk and whole["open_count"] == 5


def test_an_empty_queue_answers_a_null_item(line_a):
    _, items, ana, ana_terminal = line_a
    for item in items:
        post(ana_terminal, f"/items/{item.pk}/decide", {"decision": "accept"})
    assert post(ana_terminal, "/next").json() == {"item": None, "open_count": 0}


@pytest.mark.parametrize(
    "level, audit_fraction, shown",
    [
        ("assist", 0.0, True),
        ("shadow", 0.0, False),
        ("assist", 1.0, False),  # every assist item a blind sample: the unbiased evidence
    ],
)
def test_the_models_regions_are_shown_only_where_the_item_shows_them(
    make_line, station_with_token, make_user, token_of, level, audit_fraction, shown
):
    line = make_line(name="line-m", level=level, audit_fraction=audit_fraction)
    station, _ = station_with_token(line)
    version = seed_model_version("m1")
    seed_inspection(station, "SN-1", probability=0.5, regions=[REGION], model_version=version)
    client = terminal(token_of(make_user("ana", lines=[line])))
    item = post(client, "/next").json()["item"]
    assert item["level"] == level
    if shown:
        assert item["model"] == {"defect_probability": 0.5, "regions": [REGION], "version": "m1"}
    else:
        assert item["model"] is None
    decided = post(client, f"/items/{item['id']}/decide", {"decision": "reject"}).json()
    assert "model_agrees" not in decided


def test_a_repeated_decide_is_idempotent(line_a):
    _, items, ana, ana_terminal = line_a
    path = f"/items/{items[0].pk}/decide"
    first = post(ana_terminal, path, {"decision": "reject", "time_spent_ms": 800})
    retried = post(ana_terminal, path, {"decision": "reject", "time_spent_ms": 800})
    assert first.status_code == retried.status_code == 200
    assert first.json() == retried.json()
    assert Decision.objects.count() == 1
    assert ReviewEvent.objects.filter(action=ReviewAction.DECIDED).count() == 1
    changed = post(ana_terminal, path, {"decision": "accept"})
    assert changed.status_code == 409 and changed.json()["error"] == "already_decided"
    assert Decision.objects.get().outcome == "reject"


def test_an_item_another_inspector_holds_or_decided_is_409(line_a, make_user, token_of):
    line, items, ana, ana_terminal = line_a
    ben = terminal(token_of(make_user("ben", lines=[line])))
    held = post(ana_terminal, "/next").json()["item"]["id"]
    for path, body in [("decide", {"decision": "accept"}), ("keep", {})]:
        answer = post(ben, f"/items/{held}/{path}", body)
        assert answer.status_code == 409, path
        assert answer.json()["error"] == "claimed_by_other"
    assert post(ben, f"/items/{held}/release").status_code == 200  # not his: left as it is
    assert ReviewItem.objects.get(pk=held).assigned_to == ana
    post(ana_terminal, f"/items/{held}/decide", {"decision": "accept"})
    for path, body, error in [
        ("decide", {"decision": "accept"}, "already_decided"),
        ("keep", {}, "already_decided"),
        ("undo", {}, "undo_not_allowed"),
    ]:
        answer = post(ben, f"/items/{held}/{path}", body)
        assert (answer.status_code, answer.json()["error"]) == (409, error), path
    assert Decision.objects.get().inspector == ana


def test_undo_after_the_window_is_409_and_the_decision_stays(line_a):
    _, items, ana, ana_terminal = line_a
    post(ana_terminal, f"/items/{items[0].pk}/decide", {"decision": "reject"})
    ReviewItem.objects.filter(pk=items[0].pk).update(
        decided_at=timezone.now() - timedelta(minutes=5)
    )
    answer = post(ana_terminal, f"/items/{items[0].pk}/undo")
    assert answer.status_code == 409
    assert answer.json()["error"] == "undo_not_allowed"
    assert ReviewItem.objects.get(pk=items[0].pk).state == ReviewState.DECIDED
    assert Decision.objects.get().outcome == "reject"


def test_keep_extends_the_claim_and_release_gives_the_item_to_the_next_terminal(
    line_a, make_user, token_of
):
    line, items, ana, ana_terminal = line_a
    ben = terminal(token_of(make_user("ben", lines=[line])))
    held = post(ana_terminal, "/next").json()["item"]
    ReviewItem.objects.filter(pk=held["id"]).update(
        claimed_at=timezone.now() - timedelta(seconds=60)
    )
    kept = post(ana_terminal, f"/items/{held['id']}/keep")
    assert kept.status_code == 200 and kept.json()["kept"] is True
    assert kept.json()["claimed_until"] > held["claimed_until"]
    assert post(ben, "/next").json()["item"]["id"] == items[1].pk
    released = post(ana_terminal, f"/items/{held['id']}/release")
    assert released.json() == {"released": True}
    assert post(ben, "/next", {"exclude": [items[1].pk]}).json()["item"]["id"] == held["id"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"decision": "maybe"}, "decision"),
        ({}, "decision"),
        ({"decision": "accept", "time_spent_ms": "800"}, "time_spent_ms"),
        ({"decision": "accept", "time_spent_ms": -1}, "time_spent_ms"),
        ({"decision": "accept", "time_spent_ms": 10**12}, "time_spent_ms"),
        ({"decision": "accept", "model_agrees": True}, "model_agrees"),
        (["accept"], None),
    ],
)
def test_a_bad_decision_is_400_and_stores_nothing(line_a, body, field):
    _, items, _, ana_terminal = line_a
    answer = post(ana_terminal, f"/items/{items[0].pk}/decide", body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_input"
    if field:
        assert answer.json()["field"] == field
    assert unchanged(items[0]) and not ReviewEvent.objects.exists()


@pytest.mark.parametrize(
    "data, content_type, status",
    [("{not json", "application/json", 400), ("decision=accept", "text/plain", 415)],
)
def test_a_body_that_is_not_json_is_refused(line_a, data, content_type, status):
    _, items, _, ana_terminal = line_a
    answer = ana_terminal.post(f"{API}/items/{items[0].pk}/decide", data, content_type=content_type)
    assert answer.status_code == status
    assert set(answer.json()) >= {"error", "detail"}
    assert unchanged(items[0])


def test_an_image_file_that_is_gone_is_a_404_not_a_500(line_a, settings):
    _, items, _, ana_terminal = line_a
    (settings.MEDIA_ROOT / items[0].inspection.image.name).unlink()
    answer = ana_terminal.get(f"{API}/items/{items[0].pk}/image")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"


# --- two terminals at once ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_terminals_claiming_at_once_never_get_the_same_item(queue, make_user, token_of):
    line, items = queue(12)
    clients = [terminal(token_of(make_user(name, lines=[line]))) for name in ("ana", "ben")]
    start = threading.Barrier(len(clients))
    got: dict[int, list[int]] = {0: [], 1: []}
    errors = []

    def work(index: int) -> None:
        try:
            start.wait()
            for _ in range(6):
                answer = post(clients[index], "/next", {"exclude": got[index]}).json()
                got[index].append(answer["item"]["id"])
        except Exception as error:  # reported below, with the thread's index
            errors.append((index, repr(error)))
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(item.pk for item in items)
    holders = dict(ReviewItem.objects.values_list("pk", "assigned_to__username"))
    assert {holders[pk] for pk in got[0]} == {"ana"} and {holders[pk] for pk in got[1]} == {"ben"}
