"""The labeling queue through HTTP: the page, the claim calls, the editor's queue mode and the
refresh button, with a logged-in browser session."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from labeling import queue
from labeling.models import QueueEntry, QueueRefresh
from tests.helpers import seed_inspection
from tests.labeling.conftest import MODEL_BOX


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def post(client, url, body=None):
    return client.post(url, data=json.dumps(body or {}), content_type="application/json")


def claim(client, body=None):
    return post(client, reverse("labeling:queue-claim"), body)


@pytest.fixture
def queued(inspect, line):
    """Three items: an escape, a batch image with the model's box, an uncertain item."""
    escape, batch, unsure = (
        inspect("ESC"),
        inspect("BATCH", probability=0.9, regions=[MODEL_BOX]),
        inspect("AL"),
    )
    queue.add_entries(
        [
            (escape.pk, line.pk, "escape", 0.0, {"why": "escape (audit found it)"}),
            (batch.pk, line.pk, "batch", 0.0, {"batch": 1}),
            (unsure.pk, line.pk, "uncertain", 0.6, {"why": "uncertain: uncertainty 0.90"}),
        ]
    )
    return {"escape": escape, "batch": batch, "unsure": unsure}


def test_the_page_shows_each_lines_queue_progress_and_strategy(queued, inspector, make_user, line):
    QueueRefresh.objects.create(
        line=line,
        refreshed_at="2026-12-01T10:00:00Z",
        result={
            "active_learning": {
                "status": "picked",
                "model": "v9",
                "added": 1,
                "updated": 0,
                "pool_size": 40,
                "reference_size": 12,
            }
        },
        strategy={"name": "uncertainty + novelty", "novelty_weight": 1.0, "pool": {"days": 7}},
    )
    page = client_for(inspector).get(reverse("labeling:queue"))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="queue-left">3<' in html
    assert "ESC" in html and "escape (audit found it)" in html
    assert "model v9 picked 1 of 40 recent items" in html
    assert "uncertainty + novelty" in html and "<dt>novelty_weight</dt><dd>1.0</dd>" in html
    assert "Refresh now" not in html  # inspectors label; they do not start scoring runs
    data_team = make_user("dana", "data_team", [line])
    assert "Refresh now" in client_for(data_team).get(reverse("labeling:queue")).content.decode()


def test_claims_come_most_urgent_first_and_a_skip_goes_to_someone_else(
    queued, inspector, make_user, line
):
    client = client_for(inspector)
    first = claim(client).json()
    assert first["entry"]["external_id"] == "ESC"
    assert first["entry"]["label_url"] == f"/inspections/{queued['escape'].pk}/label/?queue=1"
    assert first["progress"]["left"] == 3

    skipped = post(client, reverse("labeling:queue-skip", args=[queued["escape"].pk]))
    assert skipped.json() == {"skipped": True}
    assert claim(client).json()["entry"]["external_id"] == "BATCH"
    # the skipped item is someone else's to take, not this labeler's again this session
    other = client_for(make_user("olga", "inspector", [line]))
    assert claim(other).json()["entry"]["external_id"] == "ESC"
    assert claim(client, {"line": line.pk}).json()["entry"]["external_id"] == "BATCH"


@pytest.mark.parametrize(
    "body, message",
    [
        ({"exclude": "1"}, "exclude must be a list"),
        ({"exclude": [True]}, "exclude must be a list"),
        ({"line": "abc"}, "line must be a line id"),
        ({"line": 1.5}, "line must be a line id"),
        ({"line": "²"}, "line must be a line id"),  # a digit to str.isdigit, not to int()
        ({"line": 2**70}, "line must be a line id"),  # beyond the database's integers
    ],
)
def test_a_bad_claim_is_a_400_and_claims_nothing(queued, inspector, body, message):
    answer = claim(client_for(inspector), body)
    assert answer.status_code == 400
    assert message in answer.json()["detail"]
    assert not QueueEntry.objects.filter(assigned_to__isnull=False).exists()


@pytest.mark.parametrize("typed", ["²", "99999999999999999999999", "-1", "x"])
def test_a_line_filter_that_is_no_id_shows_every_line(queued, inspector, typed):
    client = client_for(inspector)
    assert client.get(reverse("labeling:queue"), {"line": typed}).status_code == 200
    entry = claim(client).json()["entry"]
    label = client.get(entry["label_url"].split("?")[0], {"queue": "1", "line": typed})
    assert label.status_code == 200


def test_another_lines_item_is_not_found(queued, make_line, station_with_token, inspector):
    other = make_line(name="line-b")
    item = seed_inspection(station_with_token(other)[0], "B-1")
    queue.add_to_queue(inspections=[item], kind="escape")
    client = client_for(inspector)

    for action in ("keep", "release", "skip"):
        url = reverse(f"labeling:queue-{action}", args=[item.pk])
        assert post(client, url).status_code == 404
    assert claim(client, {"line": other.pk}).json() == {
        "entry": None,
        "progress": claim(client, {"line": other.pk}).json()["progress"],
    }
    assert QueueEntry.objects.get(inspection=item).assigned_to is None


def test_the_editors_queue_mode_saves_and_counts_the_item_done(queued, inspector):
    client = client_for(inspector)
    entry = claim(client).json()["entry"]

    page = client.get(entry["label_url"])
    html = page.content.decode()
    assert 'id="queue-bar"' in html and "Audit escape" in html
    editor = page.context["editor"]
    assert editor["queue"]["holds"] is True
    assert editor["queue"]["skip_url"] == f"/inspections/{entry['inspection_id']}/queue/skip"

    saved = post(
        client,
        reverse("labeling:annotations", args=[entry["inspection_id"]]),
        {"image_label": "defective", "boxes": [MODEL_BOX]},
    )
    assert saved.status_code == 201
    progress = claim(client).json()["progress"]
    assert progress["done"] == 1 and progress["left"] == 2
    assert {k["kind"]: k["done"] for k in progress["kinds"]}["escape"] == 1
    assert post(client, reverse("labeling:queue-keep", args=[entry["inspection_id"]])).json() == {
        "kept": False
    }


def test_a_batch_image_starts_from_the_models_boxes(queued, inspector):
    client = client_for(inspector)
    claim(client)  # the escape
    entry = claim(client, {"exclude": [QueueEntry.objects.get(kind="escape").pk]}).json()["entry"]
    assert entry["external_id"] == "BATCH"

    page = client.get(entry["label_url"])
    assert page.context["editor"]["latest"] == {
        "image_label": "defective",
        "boxes": [MODEL_BOX],
        "note": "",
    }
    assert "starting from the model's boxes" in page.content.decode()


def test_someone_elses_item_in_queue_mode_says_so(queued, inspector, make_user, line):
    entry = claim(client_for(make_user("olga", "inspector", [line]))).json()["entry"]
    page = client_for(inspector).get(entry["label_url"])
    assert page.context["editor"]["queue"]["holds"] is False
    assert "Not yours on the labeling queue any more" in page.content.decode()


def test_refresh_now_runs_for_the_data_team_and_is_refused_to_inspectors(
    queued, inspector, make_user, line
):
    url = reverse("labeling:queue-refresh", args=[line.pk])
    assert client_for(inspector).post(url).status_code == 403
    assert not QueueRefresh.objects.exists()

    answer = client_for(make_user("dana", "data_team", [line])).post(url)
    assert answer.status_code == 302
    assert answer["Location"] == f"/labeling/?line={line.pk}"
    # tests run tasks in-process: the refresh is done when the answer comes
    assert QueueRefresh.objects.get(line=line).result["active_learning"]["status"] == "no_model"
