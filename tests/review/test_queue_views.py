"""The review queue's JSON calls, as the page makes them: session login, CSRF, JSON errors."""

import json

import pytest
from django.test import Client

from inspection.models import Decision, ReviewItem


def post(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


@pytest.fixture
def inspector_client(queue, make_user):
    line, items = queue(3)
    user = make_user("ana", lines=[line])
    client = Client()
    client.force_login(user)
    return client, items


def test_queue_page_lists_the_users_lines(inspector_client):
    client, _ = inspector_client
    page = client.get("/review/")
    assert page.status_code == 200
    assert b"line-a" in page.content


def test_claim_decide_undo_round_trip(inspector_client):
    client, items = inspector_client
    first = post(client, "/review/claim").json()
    assert first["item"]["id"] == items[0].pk and first["open_count"] == 3
    assert first["item"]["model"] is None  # human_only: no model output to show
    second = post(client, "/review/claim", {"exclude": [items[0].pk]}).json()
    assert second["item"]["id"] == items[1].pk
    decided = post(
        client, f"/review/items/{items[0].pk}/decide", {"decision": "reject", "time_spent_ms": 900}
    )
    assert decided.status_code == 200 and decided.json()["open_count"] == 2
    assert Decision.objects.get().outcome == "reject"
    undone = post(client, f"/review/items/{items[0].pk}/undo")
    assert undone.status_code == 200 and undone.json()["item"]["id"] == items[0].pk
    assert not Decision.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "accept", "time_spent_ms": "soon"}, "time_spent_ms"),
        ({"decision": "accept", "time_spent_ms": -5}, "time_spent_ms"),
    ],
)
def test_bad_decisions_get_400_and_store_nothing(inspector_client, body, field):
    client, items = inspector_client
    answer = post(client, f"/review/items/{items[0].pk}/decide", body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_input" and field in answer.json()["detail"]
    assert not Decision.objects.exists()


def test_malformed_json_is_a_400(inspector_client):
    client, items = inspector_client
    answer = client.post(
        f"/review/items/{items[0].pk}/decide", "{not json", content_type="application/json"
    )
    assert answer.status_code == 400 and answer.json()["error"] == "malformed_json"


def test_deciding_an_item_held_by_another_inspector_is_a_409(queue, make_user):
    line, items = queue(1)
    ana, ben = Client(), Client()
    ana.force_login(make_user("ana", lines=[line]))
    ben.force_login(make_user("ben", lines=[line]))
    post(ana, "/review/claim")
    answer = post(ben, f"/review/items/{items[0].pk}/decide", {"decision": "accept"})
    assert answer.status_code == 409 and answer.json()["error"] == "claimed_by_other"


def test_another_lines_item_is_a_404(queue, make_user):
    _, items_a = queue(1, name="line-a")
    line_b, _ = queue(1, name="line-b")
    client = Client()
    client.force_login(make_user("ana", lines=[line_b]))
    answer = post(client, f"/review/items/{items_a[0].pk}/decide", {"decision": "accept"})
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    assert not Decision.objects.exists()


def test_data_team_cannot_decide(queue, make_user):
    line, items = queue(1)
    client = Client()
    client.force_login(make_user("dana", role="data_team", lines=[line]))
    assert client.get("/review/").status_code == 403
    answer = post(client, f"/review/items/{items[0].pk}/decide", {"decision": "accept"})
    assert answer.status_code == 403 and answer.json()["error"] == "forbidden"


def test_decisions_need_the_csrf_token(queue, make_user):
    line, items = queue(1)
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("ana", lines=[line]))
    answer = post(client, f"/review/items/{items[0].pk}/decide", {"decision": "accept"})
    assert answer.status_code == 403
    assert not Decision.objects.exists()


@pytest.mark.parametrize(("audit_fraction", "shown"), [(0.0, True), (1.0, False)])
def test_agreement_is_never_in_the_answer_and_a_blind_sample_hides_the_model(
    make_line, station_with_token, make_user, audit_fraction, shown
):
    """The inspector learns nothing of agreement while the decision can still be undone; a
    blind sample at assist shows no model at all."""
    from ml import services as ml_services
    from tests.helpers import seed_inspection, seed_model_version

    line = make_line(name="assist-line", level="assist", audit_fraction=audit_fraction)
    station, _ = station_with_token(line)
    version = seed_model_version("v1")
    ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
    station.line.refresh_from_db()
    seed_inspection(station, "SN-1", probability=0.95, model_version=version)
    client = Client()
    client.force_login(make_user("ana", lines=[line]))
    item = post(client, "/review/claim").json()["item"]
    assert (item["model"] is not None) is shown
    assert item["reason"] == (
        "Level reviews every item" if shown else "Blind sample (model hidden)"
    )
    answer = post(client, f"/review/items/{item['id']}/decide", {"decision": "accept"}).json()
    assert set(answer) == {"id", "decision", "undo_window_s", "open_count"}
    # stored for the figures all the same
    assert ReviewItem.objects.get(pk=item["id"]).model_agrees is False
