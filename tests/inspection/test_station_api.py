"""The station API in-process (tasks run eagerly): levels, retries, fail-safes, polling."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from inspection.models import Decision, Inspection, Prediction, ReviewItem
from review.services import decide_review_item
from tests.helpers import image_bytes

URL = "/api/v1/inspections/"

# Thresholds that force the tiny model's outcome whatever its probability.
ALWAYS_ACCEPT = dict(accept_threshold=0.9999, reject_threshold=1.0)
ALWAYS_REJECT = dict(accept_threshold=0.0, reject_threshold=0.0001)
ALWAYS_UNSURE = dict(accept_threshold=0.0, reject_threshold=1.0)


@pytest.fixture
def station_client(make_line, station_with_token, model_version):
    def make(level, **line_kwargs):
        line = make_line(name=f"line-{level}", level=level, **line_kwargs)
        line.active_model = model_version
        line.save()
        station, token = station_with_token(line)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client, station

    return make


def post(client, external_id="SN-1", data=None, **extra):
    upload = SimpleUploadedFile("part.png", data or image_bytes(), content_type="image/png")
    return client.post(
        URL, {"image": upload, "external_id": external_id, **extra}, format="multipart"
    )


@pytest.mark.django_db(transaction=True)
def test_human_only_answers_review_without_asking_the_model(station_client):
    client, _ = station_client("human_only")
    response = post(client)
    assert response.status_code == 201
    body = response.json()
    assert body["decision"] == "review"
    assert body["defect_probability"] is None and body["regions"] == []
    inspection = Inspection.objects.get(pk=body["id"])
    assert inspection.predictions.count() == 0
    assert inspection.review_item.reason == "every_item"


@pytest.mark.django_db(transaction=True)
def test_shadow_records_the_prediction_but_shows_it_to_nobody(station_client, django_user_model):
    client, _ = station_client("shadow")
    body = post(client).json()
    assert body["decision"] == "review"
    assert body["defect_probability"] is None and body["regions"] == []
    inspection = Inspection.objects.get(pk=body["id"])
    assert inspection.predictions.count() == 1
    assert inspection.review_item.shows_model is False

    inspector = django_user_model.objects.create_user("ina")
    item = decide_review_item(item=inspection.review_item, inspector=inspector, outcome="accept")
    prediction = inspection.predictions.get()
    assert item.model_agrees is (prediction.defect_probability < inspection.reject_threshold)
    # while the inspector can still undo it, the station keeps waiting
    polled = client.get(f"{URL}{inspection.pk}/").json()
    assert (polled["status"], polled["decision"], polled["decided_by"]) == (
        "in_review",
        "review",
        None,
    )
    age_human_decisions(inspection)
    polled = client.get(f"{URL}{inspection.pk}/").json()
    assert (polled["status"], polled["decision"], polled["decided_by"]) == (
        "decided",
        "accept",
        "human",
    )


@pytest.mark.django_db(transaction=True)
def test_assist_sends_to_review_with_the_model_output(station_client):
    client, _ = station_client("assist", audit_fraction=0.0)  # no blind sample
    body = post(client).json()
    assert body["decision"] == "review"
    prediction = Prediction.objects.get(inspection_id=body["id"])
    assert body["defect_probability"] == round(prediction.defect_probability, 4)
    assert body["model_version"] == "tiny"
    assert ReviewItem.objects.get(inspection_id=body["id"]).shows_model is True


@pytest.mark.parametrize(
    ("thresholds", "decision", "in_review"),
    [
        (ALWAYS_ACCEPT, "accept", False),
        (ALWAYS_REJECT, "reject", False),
        (ALWAYS_UNSURE, "review", True),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_partial_decides_when_confident_else_reviews(
    station_client, thresholds, decision, in_review
):
    client, _ = station_client("partial", audit_fraction=0.0, **thresholds)
    body = post(client).json()
    assert body["decision"] == decision
    assert ReviewItem.objects.filter(inspection_id=body["id"]).exists() is in_review
    if not in_review:
        recorded = Decision.objects.get(inspection_id=body["id"])
        assert (recorded.decided_by, recorded.model_version.name) == ("model", "tiny")


@pytest.mark.django_db(transaction=True)
def test_full_decides_and_an_audited_item_keeps_the_model_decision(
    station_client, django_user_model
):
    client, _ = station_client("full", audit_fraction=1.0, **ALWAYS_REJECT)
    body = post(client).json()
    assert (body["decision"], body["decided_by"]) == ("reject", "model")
    item = ReviewItem.objects.get(inspection_id=body["id"])
    assert item.reason == "audit"
    decide_review_item(
        item=item, inspector=django_user_model.objects.create_user("aud"), outcome="accept"
    )
    assert Decision.objects.get(inspection_id=body["id"]).outcome == "reject"
    assert client.get(f"{URL}{body['id']}/").json()["decision"] == "reject"


@pytest.mark.django_db(transaction=True)
def test_partial_audits_a_confident_decision_without_changing_it(station_client):
    client, _ = station_client("partial", audit_fraction=1.0, **ALWAYS_ACCEPT)
    body = post(client).json()
    assert (body["decision"], body["decided_by"]) == ("accept", "model")
    item = ReviewItem.objects.get(inspection_id=body["id"])
    assert (item.reason, item.shows_model) == ("audit", False)


@pytest.mark.django_db(transaction=True)
def test_full_without_audit_fraction_queues_nothing(station_client):
    client, _ = station_client("full", audit_fraction=0.0, **ALWAYS_ACCEPT)
    body = post(client).json()
    assert body["decision"] == "accept"
    assert not ReviewItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_retry_with_the_same_image_returns_the_same_inspection(station_client):
    client, _ = station_client("partial", **ALWAYS_REJECT)
    first = post(client, "SN-7")
    again = post(client, "SN-7")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["decision"] == "reject"
    assert (Inspection.objects.count(), Prediction.objects.count(), Decision.objects.count()) == (
        1,
        1,
        1,
    )


@pytest.mark.django_db(transaction=True)
def test_retry_with_another_image_is_a_conflict_that_changes_nothing(station_client, settings):
    client, _ = station_client("partial", **ALWAYS_REJECT)
    post(client, "SN-8", image_bytes(seed=1))
    files_before = sorted(settings.MEDIA_ROOT.rglob("*.png"))
    response = post(client, "SN-8", image_bytes(seed=2))
    assert response.status_code == 409
    assert response.json()["error"] == "external_id_conflict"
    assert Inspection.objects.count() == 1
    assert sorted(settings.MEDIA_ROOT.rglob("*.png")) == files_before


@pytest.mark.django_db(transaction=True)
def test_same_external_id_on_another_station_is_another_inspection(
    station_client, station_with_token
):
    client, station = station_client("human_only")
    _, token = station_with_token(station.line, name="cam-2")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert post(client, "SN-9").status_code == 201
    assert post(other, "SN-9").status_code == 201
    assert Inspection.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_no_active_model_applies_the_fail_safe(station_client):
    client, station = station_client("full", **ALWAYS_ACCEPT)
    station.line.active_model = None
    station.line.save()
    body = post(client).json()
    assert (body["decision"], body["fail_safe_reason"]) == ("review", "no_model")
    assert ReviewItem.objects.get(inspection_id=body["id"]).reason == "fail_safe"


@pytest.mark.django_db(transaction=True)
def test_fail_safe_reject_rejects_instead_of_reviewing(station_client):
    client, station = station_client("full", fail_safe_action="reject", **ALWAYS_ACCEPT)
    station.line.active_model = None
    station.line.save()
    body = post(client).json()
    assert (body["decision"], body["decided_by"]) == ("reject", "fail_safe")


@pytest.mark.django_db(transaction=True)
def test_a_tampered_model_artifact_applies_the_fail_safe(station_client, model_version):
    client, _ = station_client("full", **ALWAYS_ACCEPT)
    model_version.artifact_sha256 = "0" * 64
    model_version.save()
    body = post(client).json()
    assert (body["decision"], body["fail_safe_reason"]) == ("review", "model_error")
    assert not Prediction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_missed_budget_applies_the_fail_safe_and_keeps_the_late_prediction(station_client):
    client, _ = station_client("full", latency_budget_ms=1, **ALWAYS_ACCEPT)
    body = post(client).json()
    assert (body["decision"], body["fail_safe_reason"]) == ("review", "budget_missed")
    assert Prediction.objects.get(inspection_id=body["id"]).is_late is True
    assert not Decision.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_station_cannot_read_another_stations_inspection(station_client, station_with_token):
    client, station = station_client("human_only")
    inspection_id = post(client).json()["id"]
    _, token = station_with_token(station.line, name="cam-2")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert other.get(f"{URL}{inspection_id}/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_metadata_is_stored(station_client):
    client, _ = station_client("human_only")
    body = post(client, metadata='{"lot": "L-42", "shift": 2}').json()
    assert Inspection.objects.get(pk=body["id"]).metadata == {"lot": "L-42", "shift": 2}


def age_human_decisions(inspection, seconds=None):
    """Move the human decision past the undo window, as if its seconds had passed."""
    from datetime import timedelta

    from django.conf import settings
    from django.db.models import F

    seconds = settings.LOUPE_UNDO_WINDOW_S + 1 if seconds is None else seconds
    # as if the seconds had passed: every stored moment of the decision moves back together
    Decision.objects.filter(inspection=inspection).update(
        decided_at=F("decided_at") - timedelta(seconds=seconds),
        final_at=F("final_at") - timedelta(seconds=seconds),
    )
