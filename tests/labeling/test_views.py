"""The labeling pages and the editor's JSON call, through HTTP with a logged-in browser session."""

import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F
from django.test import Client
from django.urls import reverse

from inspection.models import ReviewItem
from labeling.models import AnnotationRevision
from review.services import decide_review_item
from tests.labeling.conftest import MODEL_BOX, PASSWORD

DENT = {"x0": 70, "y0": 70, "x1": 90, "y1": 100, "label": "dent"}


def client_for(user, **kwargs):
    client = Client(**kwargs)
    client.force_login(user)
    return client


def post_json(client, inspection, body, **extra):
    return client.post(
        reverse("labeling:annotations", args=[inspection.pk]),
        data=body if isinstance(body, str) else json.dumps(body),
        content_type="application/json",
        **extra,
    )


def test_saving_returns_the_revision_and_get_lists_them(defective, inspector):
    client = client_for(inspector)
    first = post_json(client, defective, {"image_label": "defective", "boxes": [MODEL_BOX]})
    second = post_json(client, defective, {"image_label": "defective", "boxes": [DENT]})
    repeat = post_json(client, defective, {"image_label": "defective", "boxes": [DENT]})

    assert (first.status_code, second.status_code, repeat.status_code) == (201, 201, 200)
    assert first.json()["revision"]["source"] == "model_accepted"
    assert second.json()["revision"] | {"created_at": None} == {
        "number": 2,
        "author": "ines",
        "created_at": None,
        "image_label": "defective",
        "boxes": [{"x0": 70.0, "y0": 70.0, "x1": 90.0, "y1": 100.0, "label": "dent"}],
        "source": "correction",
        "note": "",
        "compared_with": {
            "prediction_id": defective.predictions.get().pk,
            "model_version": "v-label",
            "defect_probability": 0.93,
        },
    }
    assert repeat.json()["created"] is False

    listing = client.get(reverse("labeling:annotations", args=[defective.pk])).json()
    assert [r["number"] for r in listing["revisions"]] == [1, 2]


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({"image_label": "defective", "boxes": [{**DENT, "x1": 500}]}, "invalid_input", "box 1"),
        ({"image_label": "maybe", "boxes": []}, "invalid_input", "image label must be"),
        (
            {"image_label": "defective", "boxes": [{**DENT, "label": "rust"}]},
            "invalid_input",
            "class 'rust'",
        ),
        ('{"image_label": "defective", "boxes": [{"x0": NaN}]}', "invalid_input", "finite"),
        ("{not json", "malformed_json", "not valid JSON"),
        ("[1, 2]", "malformed_json", "must be a JSON object"),
    ],
    ids=["outside-image", "bad-label", "unknown-class", "nan", "not-json", "not-an-object"],
)
def test_bad_input_is_a_400_with_a_reason_and_stores_nothing(
    defective, inspector, body, code, detail
):
    response = post_json(client_for(inspector), defective, body)
    assert response.status_code == 400
    assert response.json()["error"] == code
    assert detail in response.json()["detail"]
    assert AnnotationRevision.objects.count() == 0


@pytest.fixture
def other_lines_inspection(make_line, station_with_token, inspect):
    other = make_line(name="line-b", level="human_only")
    return inspect("SN-B", on_station=station_with_token(other, name="cam-b")[0])


@pytest.mark.parametrize("route", ["labeling:label", "labeling:history", "labeling:annotations"])
def test_another_lines_inspection_is_not_found(other_lines_inspection, inspector, route):
    response = client_for(inspector).get(reverse(route, args=[other_lines_inspection.pk]))
    assert response.status_code == 404


def test_saving_on_another_lines_inspection_is_a_404_json(other_lines_inspection, inspector):
    response = post_json(
        client_for(inspector), other_lines_inspection, {"image_label": "ok", "boxes": []}
    )
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert AnnotationRevision.objects.count() == 0


@pytest.fixture
def no_role_user(line):
    """A member of the line with no role: may see nothing and label nothing."""
    user = get_user_model().objects.create_user("nobody", password=PASSWORD)
    line.members.add(user)
    return user


def test_a_user_who_may_not_label_gets_403(defective, no_role_user):
    client = client_for(no_role_user)
    response = post_json(client, defective, {"image_label": "ok", "boxes": []})
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "detail": "your role does not allow this"}
    assert AnnotationRevision.objects.count() == 0
    for route in ["labeling:label", "labeling:history", "labeling:annotations"]:
        assert client.get(reverse(route, args=[defective.pk])).status_code == 403
    assert client.get(reverse("labeling:data")).status_code == 403


@pytest.mark.parametrize("role", ["inspector", "supervisor", "data_team", "admin"])
def test_every_role_may_label(defective, make_user, line, role):
    user = make_user(f"u-{role}", role, [line])
    client = client_for(user)
    assert client.get(reverse("labeling:label", args=[defective.pk])).status_code == 200
    response = post_json(client, defective, {"image_label": "ok", "boxes": []})
    assert response.status_code == 201


def test_saving_needs_the_csrf_token(defective, inspector):
    client = client_for(inspector, enforce_csrf_checks=True)
    body = {"image_label": "defective", "boxes": [DENT]}
    assert post_json(client, defective, body).status_code == 403
    assert AnnotationRevision.objects.count() == 0

    client.get(reverse("labeling:label", args=[defective.pk]))  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    assert post_json(client, defective, body, HTTP_X_CSRFTOKEN=token).status_code == 201
    assert AnnotationRevision.objects.count() == 1


def editor_data(response) -> dict:
    return response.context["editor"]


def test_the_label_page_starts_from_the_latest_revision(defective, inspector):
    client = client_for(inspector)
    empty = client.get(reverse("labeling:label", args=[defective.pk]))
    assert editor_data(empty)["latest"] is None
    assert editor_data(empty)["model_regions"] == [{**MODEL_BOX, "score": 0.9}]

    post_json(client, defective, {"image_label": "defective", "boxes": [DENT], "note": "dent"})
    page = client.get(reverse("labeling:label", args=[defective.pk]))
    assert editor_data(page)["latest"]["boxes"][0]["label"] == "dent"
    assert b'id="annotate-data"' in page.content


def test_in_shadow_the_models_boxes_stay_hidden_until_the_review_decision_is_final(
    make_line, station_with_token, inspect, make_user
):
    shadow = make_line(name="line-s", level="shadow")
    inspection = inspect(
        "SN-S", probability=0.9, regions=[MODEL_BOX], on_station=station_with_token(shadow)[0]
    )
    user = make_user("sam", "inspector", [shadow])
    client = client_for(user)
    page = client.get(reverse("labeling:label", args=[inspection.pk]))
    assert editor_data(page)["model_regions"] is None
    assert b"stays hidden until" in page.content

    decide_review_item(item=inspection.review_item, inspector=user, outcome="reject")
    page = client.get(reverse("labeling:label", args=[inspection.pk]))
    assert editor_data(page)["model_regions"] is None, "shown while the decision can be undone"
    passed = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    ReviewItem.objects.filter(pk=inspection.review_item.pk).update(
        decided_at=F("decided_at") - passed
    )
    page = client.get(reverse("labeling:label", args=[inspection.pk]))
    assert editor_data(page)["model_regions"] == [{**MODEL_BOX, "score": 0.9}]


def test_history_shows_every_revision_newest_first(defective, inspector):
    client = client_for(inspector)
    post_json(client, defective, {"image_label": "defective", "boxes": [MODEL_BOX]})
    post_json(client, defective, {"image_label": "ok", "boxes": [], "note": "no, clean"})
    page = client.get(reverse("labeling:history", args=[defective.pk]))
    assert page.status_code == 200
    revisions = page.context["revisions"]
    assert [(r.number, r.source) for r in revisions] == [
        (2, "correction"),
        (1, "model_accepted"),
    ]
    # boxes over the image as percentages of its 128 px
    assert revisions[1].overlay[0]["left"] == pytest.approx(100 * 10 / 128)
    assert b"no, clean" in page.content
