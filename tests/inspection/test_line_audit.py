"""Every change of a line is in its audit log, from a service, a command or Django admin; history
cannot be deleted from admin, and a line with history cannot be deleted at all."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db.models import ProtectedError
from django.test import RequestFactory
from django.urls import reverse

from inspection import services
from inspection.models import Decision, Line, LineChange, Station
from loupe.common.errors import InvalidInput
from ml import services as ml_services
from ml.models import RetrainingPolicy
from tests.helpers import seed_inspection

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-Loupe-123")
    client.force_login(admin)
    return client


def logged(line, field=None):
    rows = LineChange.objects.filter(line=line)
    if field:
        rows = rows.filter(field=field)
    return list(rows.order_by("pk").values_list("field", "old_value", "new_value", "changed_by"))


def test_every_line_setting_is_logged_by_the_service(make_line):
    line = make_line(name="press-4")
    services.set_line_settings(
        line=line,
        changed_by="sam",
        fail_safe_action="reject",
        latency_budget_ms=250,
        audit_fraction=0.1,
        defect_classes=["scratch", "dent"],
    )
    assert logged(line) == [
        ("latency_budget_ms", "1000", "250", "sam"),
        ("fail_safe_action", "review", "reject", "sam"),
        ("audit_fraction", "0.02", "0.1", "sam"),
        ("defect_classes", "['scratch', 'dent', 'spot', 'crack']", "['scratch', 'dent']", "sam"),
    ]
    line.refresh_from_db()
    assert (line.fail_safe_action, line.latency_budget_ms) == ("reject", 250)


@pytest.mark.parametrize(
    "values",
    [
        {"fail_safe_action": "accept"},
        {"latency_budget_ms": 0},
        {"audit_fraction": 1.5},
        {"defect_classes": []},
        {"accept_threshold": 0.9},  # above the line's reject threshold
        {"colour": "red"},
    ],
)
def test_a_bad_setting_changes_nothing(make_line, values):
    line = make_line(name="press-4")
    with pytest.raises(InvalidInput):
        services.set_line_settings(line=line, changed_by="sam", **values)
    assert logged(line) == []
    fresh = Line.objects.get(pk=line.pk)
    assert (fresh.fail_safe_action, fresh.latency_budget_ms, fresh.accept_threshold) == (
        "review",
        1000,
        0.2,
    )


def test_members_stations_and_tokens_are_logged(make_line, station_with_token):
    line, other = make_line(name="press-4"), make_line(name="press-5")
    ana = get_user_model().objects.create_user("ana")
    services.add_line_member(line=line, user=ana, changed_by="sam")
    services.set_line_members(line=line, users=[], changed_by="sam")
    station, old_token = station_with_token(line)
    new_token = services.rotate_station_token(station=station, changed_by="sam")
    services.set_station_enabled(station=station, enabled=False, changed_by="sam")
    services.move_station(station=station, line=other, changed_by="sam")

    assert logged(line) == [
        ("members", "", "+ana", "sam"),
        ("members", "-ana", "", "sam"),
        ("station cam-1 token", old_token[:10], new_token[:10], "sam"),
        ("station cam-1 enabled", "True", "False", "sam"),
        ("stations", "-cam-1", "moved to press-5", "sam"),
    ]
    assert logged(other) == [("stations", "from press-4", "+cam-1", "sam")]
    assert services.station_for_token(old_token) is None
    assert Station.objects.get(pk=station.pk).line == other


def test_admin_line_edit_goes_through_the_audited_service(admin_client, make_line):
    line = make_line(name="press-4")
    ana = get_user_model().objects.create_user("ana")
    form = {
        "automation_level": "shadow",
        "accept_threshold": "0.2",
        "reject_threshold": "0.8",
        "latency_budget_ms": "500",
        "fail_safe_action": "review",
        "audit_fraction": "0.02",
        "agreement_target": "0.95",
        "escape_rate_limit": "0.25",
        "defect_classes": '["scratch", "dent", "spot", "crack"]',
        "members": [ana.pk],
        "stations-TOTAL_FORMS": "0",
        "stations-INITIAL_FORMS": "0",
        "stations-MIN_NUM_FORMS": "0",
        "stations-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post(reverse("admin:inspection_line_change", args=[line.pk]), form)
    assert response.status_code == 302, response.content[:2000]
    assert logged(line) == [
        ("automation_level", "human_only", "shadow", "root (admin)"),
        ("latency_budget_ms", "1000", "500", "root (admin)"),
        ("members", "", "+ana", "root (admin)"),
    ]


def test_admin_refuses_a_bad_line_setting_on_the_page(admin_client, make_line):
    line = make_line(name="press-4")
    form = {
        "automation_level": "full",
        "accept_threshold": "0.9",
        "reject_threshold": "0.8",
        "latency_budget_ms": "500",
        "fail_safe_action": "review",
        "audit_fraction": "0.02",
        "agreement_target": "0.95",
        "escape_rate_limit": "0.25",
        "defect_classes": '["scratch"]',
        "stations-TOTAL_FORMS": "0",
        "stations-INITIAL_FORMS": "0",
        "stations-MIN_NUM_FORMS": "0",
        "stations-MAX_NUM_FORMS": "1000",
    }
    response = admin_client.post(reverse("admin:inspection_line_change", args=[line.pk]), form)
    assert response.status_code == 200
    assert b"thresholds must satisfy" in response.content
    assert logged(line) == []


def test_admin_station_edit_and_token_rotation_are_logged(
    admin_client, make_line, station_with_token
):
    line = make_line(name="press-4")
    station, token = station_with_token(line)
    url = reverse("admin:inspection_station_change", args=[station.pk])
    response = admin_client.post(url, {"line": line.pk})  # is_enabled unticked
    assert response.status_code == 302
    response = admin_client.post(
        reverse("admin:inspection_station_changelist"),
        {"action": "rotate_tokens", "_selected_action": [station.pk]},
    )
    assert response.status_code == 302
    fields = [row[0] for row in logged(line)]
    assert fields == ["station cam-1 enabled", "station cam-1 token"]
    assert services.station_for_token(token) is None


def test_admin_retraining_policy_is_saved_through_its_service(admin_client, make_line):
    line = make_line(name="press-4")
    response = admin_client.post(
        reverse("admin:ml_retrainingpolicy_add"),
        {
            "line": line.pk,
            "mlops_level": "automatic",
            "retrain_every_corrections": "50",
            "gate_margin": "0.02",
            "max_class_recall_drop": "0.05",
            "memory_budget_mb": "1024",
            "run_config": '{"epochs": 2}',
        },
    )
    assert response.status_code == 302, response.content[:2000]
    policy = RetrainingPolicy.objects.get(line=line)
    assert (policy.mlops_level, policy.memory_budget_mb) == ("automatic", 1024)
    assert policy.run_config == {"epochs": 2}
    assert ("mlops_level", "manual", "automatic", "root (admin)") in logged(line)
    assert ("memory_budget_mb", "2048", "1024", "root (admin)") in logged(line)


def test_admin_cannot_edit_the_active_model(admin_client, make_line):
    line = make_line(name="press-4")
    page = admin_client.get(reverse("admin:inspection_line_change", args=[line.pk]))
    assert b'name="active_model"' not in page.content


@pytest.mark.parametrize(
    "model_name",
    [
        "inspection_decision",
        "inspection_inspection",
        "inspection_prediction",
        "inspection_reviewitem",
        "inspection_linechange",
        "labeling_annotationrevision",
        "ml_modelversion",
        "datasets_datasetversion",
    ],
)
def test_history_cannot_be_deleted_or_edited_from_admin(admin_client, model_name):
    app_label, model = model_name.split("_", 1)
    model_admin = admin.site._registry[apps.get_model(app_label, model)]
    request = RequestFactory().get("/")
    request.user = get_user_model().objects.get(username="root")
    assert not model_admin.has_delete_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_add_permission(request)


def test_a_line_with_history_cannot_be_deleted(admin_client, make_line, model_version):
    line = make_line(name="press-4", level="full")
    ml_services.set_active_version(line=line, model_version=model_version, changed_by="sam")
    station, _ = services.create_station(line=line, name="cam")
    seed_inspection(station, "item-1", probability=0.9, model_version=model_version)
    response = admin_client.post(
        reverse("admin:inspection_line_delete", args=[line.pk]), {"post": "yes"}
    )
    assert response.status_code == 403
    with pytest.raises(ProtectedError):
        Line.objects.filter(pk=line.pk).delete()
    assert Decision.objects.filter(inspection__line=line).count() == 1
