"""The registry pages over HTTP: who sees what, who may act, and what the actions change."""

import pytest
from django.test import Client
from django.urls import reverse

from inspection.models import LineChange
from ml import pipeline, services
from ml.models import ModelStatus, ModelVersion, PipelineRun
from tests.helpers import seed_model_version

pytestmark = pytest.mark.django_db
ROLES = ["inspector", "supervisor", "data_team", "admin"]


@pytest.fixture
def other_line(make_line):
    return make_line(name="press-9")


@pytest.fixture
def versions(line, other_line):
    """line serves v-old and has candidate v-new, with figures; press-9 has v-far."""
    old, new, far = (seed_model_version(n) for n in ("v-old", "v-new", "v-far"))
    figures = {
        "count": 40,
        "auroc": 0.9876,
        "box_iou": 0.5,
        "reject": {
            "threshold": 0.8,
            "f1": 0.9,
            "recall": 0.9,
            "precision": 0.9,
            "recall_per_class": {"crack": 0.95},
        },
        "accept": {
            "threshold": 0.2,
            "f1": 0.8,
            "recall": 1.0,
            "precision": 0.7,
            "recall_per_class": {"crack": 1.0},
        },
    }
    ModelVersion.objects.filter(pk__in=[old.pk, new.pk]).update(line=line, metrics=figures)
    ModelVersion.objects.filter(pk=far.pk).update(line=other_line)
    services.set_active_version(line=line, model_version=old, changed_by="sam")
    return [ModelVersion.objects.get(pk=v.pk) for v in (old, new, far)]


def client_for(make_user, role, line):
    client = Client()
    client.force_login(make_user(f"u-{role}", role, [line]))
    return client


@pytest.mark.parametrize("role", ROLES)
def test_every_role_sees_its_lines_versions_side_by_side(role, make_user, line, versions):
    client = client_for(make_user, role, line)
    response = client.get(reverse("ml:registry"))
    assert response.status_code == 200
    names = [v.name for v in response.context["versions"]]
    assert names == ["v-new", "v-old"]
    page = response.content.decode()
    assert "0.9876" in page and "Recall of crack at reject" in page
    assert "v-far" not in page
    # the data team starts retraining too (PRODUCT.md); inspectors do not
    assert ('id="start-run"' in page) == (role in ("supervisor", "data_team", "admin"))


@pytest.mark.parametrize("role", ["inspector", "supervisor"])
def test_another_lines_version_and_run_are_not_found(role, make_user, line, other_line, versions):
    client = client_for(make_user, role, line)
    far = versions[2]
    run = PipelineRun.objects.create(line=other_line, trigger="manual", config={})
    assert client.get(reverse("ml:version", args=[far.pk])).status_code == 404
    assert client.get(reverse("ml:run", args=[run.pk])).status_code == 404
    assert client.get(reverse("ml:run-status", args=[run.pk])).status_code == 404
    assert client.get(f"{reverse('ml:registry')}?line={other_line.pk}").status_code == 404


@pytest.mark.parametrize("role", ["inspector", "data_team"])
def test_only_supervisors_and_admins_act(role, make_user, line, versions):
    client = client_for(make_user, role, line)
    old, new, _ = versions
    posts = [
        (reverse("ml:promote", args=[new.pk]), {"expected_active": old.pk}),
        (reverse("ml:discard", args=[new.pk]), {}),
        (reverse("ml:rollback", args=[line.pk]), {"expected_active": old.pk}),
        (reverse("ml:retraining_policy", args=[line.pk]), {"mlops_level": "automatic"}),
    ]
    if role == "inspector":
        posts.append((reverse("ml:start-run", args=[line.pk]), {}))
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    line.refresh_from_db()
    assert line.active_model == old
    assert not PipelineRun.objects.exists()


def test_the_supervisor_promotes_from_the_comparison_and_rolls_back_in_one_click(
    make_user, line, versions
):
    client = client_for(make_user, "supervisor", line)
    old, new, _ = versions
    page = client.get(reverse("ml:version", args=[new.pk])).content.decode()
    assert 'id="promote"' in page
    response = client.post(
        reverse("ml:promote", args=[new.pk]), {"expected_active": old.pk, "reason": "better"}
    )
    assert response.status_code == 302
    line.refresh_from_db()
    assert line.active_model == new
    change = LineChange.objects.filter(line=line, field="active_model").first()
    assert (change.old_value, change.new_value, change.changed_by, change.reason) == (
        "v-old",
        "v-new",
        "u-supervisor",
        "better",
    )
    client.post(reverse("ml:rollback", args=[line.pk]), {"expected_active": new.pk})
    line.refresh_from_db()
    assert line.active_model == old
    # the same click again: refused with a message, nothing rolled back twice
    response = client.post(
        reverse("ml:rollback", args=[line.pk]), {"expected_active": new.pk}, follow=True
    )
    line.refresh_from_db()
    assert line.active_model == old
    assert "serves v-old now, not v-new" in response.content.decode()


def test_the_supervisor_discards_a_candidate(make_user, line, versions):
    client = client_for(make_user, "supervisor", line)
    _, new, _ = versions
    client.post(reverse("ml:discard", args=[new.pk]))
    new.refresh_from_db()
    assert new.status == ModelStatus.RETIRED


def test_a_get_never_starts_a_run_and_a_post_shows_the_run(make_user, line, versions):
    client = client_for(make_user, "supervisor", line)
    assert client.get(reverse("ml:start-run", args=[line.pk])).status_code == 405
    assert not PipelineRun.objects.exists()
    response = client.post(reverse("ml:start-run", args=[line.pk]))
    run = PipelineRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("ml:run", args=[run.pk])
    assert run.started_by.username == "u-supervisor"


def test_the_run_page_and_its_status_json_show_each_step(make_user, line, versions):
    client = client_for(make_user, "inspector", line)
    # the test's transaction never commits, so the chain is not sent: the run waits
    run = pipeline.start_run(line=line)
    page = client.get(reverse("ml:run", args=[run.pk]))
    assert page.status_code == 200
    assert page.content.decode().count("data-step=") == len(pipeline.STEPS)
    status = client.get(reverse("ml:run-status", args=[run.pk])).json()
    assert status["state"] == "pending"
    assert status["is_finished"] is False
    assert [s["name"] for s in status["steps"]] == list(pipeline.STEPS)
    assert {s["state"] for s in status["steps"]} == {"pending"}
    assert set(status["steps"][0]) == {
        "name",
        "state",
        "progress",
        "duration_s",
        "attempts",
        "error",
        "log",
        "artifacts",
    }


def test_the_policy_form_changes_the_level_with_an_audit_entry(make_user, line, versions):
    client = client_for(make_user, "supervisor", line)
    client.post(
        reverse("ml:retraining_policy", args=[line.pk]),
        {
            "mlops_level": "assisted",
            "retrain_every_corrections": "150",
            "gate_margin": "0.02",
            "max_class_recall_drop": "0.05",
            "reason": "enough labels",
        },
    )
    policy = services.retraining_policy_for(line)
    assert (policy.mlops_level, policy.retrain_every_corrections, policy.gate_margin) == (
        "assisted",
        150,
        0.02,
    )
    fields = set(
        LineChange.objects.filter(line=line, reason="enough labels").values_list("field", flat=True)
    )
    assert fields == {"mlops_level", "retrain_every_corrections", "gate_margin"}


def test_showing_the_registry_writes_nothing(make_user, line, versions):
    from ml.models import RetrainingPolicy

    client = client_for(make_user, "supervisor", line)
    changes = LineChange.objects.count()
    assert client.get(reverse("ml:registry")).status_code == 200
    assert client.get(reverse("ml:version", args=[versions[1].pk])).status_code == 200
    assert not RetrainingPolicy.objects.exists()
    assert LineChange.objects.count() == changes


def test_the_data_team_starts_a_retraining_run_of_its_line_but_not_of_another(
    make_user, line, other_line, versions, django_capture_on_commit_callbacks
):
    client = client_for(make_user, "data_team", line)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("ml:start-run", args=[line.pk]))
    run = PipelineRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("ml:run", args=[run.pk])
    assert (run.line, run.started_by.username) == (line, "u-data_team")
    assert client.post(reverse("ml:start-run", args=[other_line.pk])).status_code == 404
