"""Escapes: an audit's reject of an item the model accepted, found through the review queue;
and a supervisor's later report by serial, through the line page."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.test import Client
from django.urls import reverse

from inspection import escapes, services
from inspection.errors import NotAModelAccept, SerialAmbiguous, SerialNotFound
from inspection.models import Escape, LineChange, ReviewItem
from ml import services as ml_services
from review.services import decide_review_item, undo_decision
from tests.helpers import seed_inspection, seed_model_version


@pytest.fixture
def make_user(db):
    from accounts.services import create_user

    def make(username, role="inspector", lines=()):
        return create_user(
            username=username,
            role=role,
            line_names=[line.name for line in lines],
            password="escape-test-password-1",
        )

    return make


@pytest.fixture
def audited_line(make_line, station_with_token, make_user):
    """A line at `level` auditing every automatic decision, its model v1, an inspector."""

    def make(level="full", name="press-1"):
        line = make_line(name=name, level=level, audit_fraction=1.0)
        station, _ = station_with_token(line)
        version = seed_model_version(f"{name}-v1")
        ml_services.set_active_version(line=line, model_version=version, changed_by="cli")
        station.line.refresh_from_db()
        inspector = make_user("ivy", lines=[line])
        return line, station, version, inspector

    return make


def test_an_audit_reject_of_a_model_accept_is_an_escape(audited_line):
    line, station, version, inspector = audited_line("full")
    inspection = seed_inspection(station, "SN-1", probability=0.05, model_version=version)
    assert inspection.decision.outcome == "accept"
    item = decide_review_item(item=inspection.review_item, inspector=inspector, outcome="reject")
    escape = Escape.objects.get()
    assert (escape.inspection_id, escape.line, escape.model_version, escape.source) == (
        inspection.pk,
        line,
        version,
        "audit",
    )
    assert escape.recorded_by == inspector
    # the audit changes nothing of the model's decision
    inspection.decision.refresh_from_db()
    assert (inspection.decision.outcome, inspection.decision.decided_by) == ("accept", "model")
    # a retried request changes nothing more
    decide_review_item(item=item, inspector=inspector, outcome="reject")
    assert Escape.objects.count() == 1


def test_partial_audits_its_automatic_accepts_and_finds_escapes(audited_line):
    line, station, version, inspector = audited_line("partial")
    inspection = seed_inspection(station, "SN-1", probability=0.1, model_version=version)
    assert (inspection.decision.decided_by, inspection.review_item.reason) == ("model", "audit")
    assert inspection.review_item.shows_model is False
    decide_review_item(item=inspection.review_item, inspector=inspector, outcome="reject")
    assert Escape.objects.get().inspection == inspection


@pytest.mark.parametrize(
    ("level", "p", "human"),
    [
        ("full", 0.05, "accept"),  # the audit agrees
        ("full", 0.95, "reject"),  # the model rejected it: no escape, whatever the human says
        ("partial", 0.95, "reject"),
        ("partial", 0.5, "reject"),  # a blind sample of the unsure band: the model decided nothing
    ],
)
def test_no_escape_unless_the_model_accepted_what_the_audit_rejects(audited_line, level, p, human):
    line, station, version, inspector = audited_line(level)
    inspection = seed_inspection(station, "SN-1", probability=p, model_version=version)
    decide_review_item(item=inspection.review_item, inspector=inspector, outcome=human)
    assert not Escape.objects.exists()


def test_undoing_the_audit_reject_takes_its_escape_back(audited_line):
    line, station, version, inspector = audited_line("full")
    inspection = seed_inspection(station, "SN-1", probability=0.05, model_version=version)
    item = decide_review_item(item=inspection.review_item, inspector=inspector, outcome="reject")
    assert Escape.objects.exists()
    undo_decision(item=item, user=inspector)
    assert not Escape.objects.exists()
    decide_review_item(item=item, inspector=inspector, outcome="accept")
    assert not Escape.objects.exists()


def test_a_reported_escape_survives_an_undone_audit(audited_line, make_user):
    line, station, version, inspector = audited_line("full")
    inspection = seed_inspection(station, "SN-1", probability=0.05, model_version=version)
    sam = make_user("sam", role="supervisor", lines=[line])
    escapes.record_reported_escape(line=line, serial="SN-1", note="customer return", user=sam)
    item = decide_review_item(item=inspection.review_item, inspector=inspector, outcome="reject")
    undo_decision(item=item, user=inspector)
    assert Escape.objects.get().source == "reported"


def test_escapes_are_counted_per_model_version(audited_line, make_user):
    line, station, v1, inspector = audited_line("full")
    for i in range(3):
        inspection = seed_inspection(station, f"A-{i}", probability=0.05, model_version=v1)
        decide_review_item(item=inspection.review_item, inspector=inspector, outcome="reject")
    v2 = seed_model_version("press-1-v2")
    ml_services.set_active_version(line=line, model_version=v2, changed_by="cli")
    seed_inspection(station, "B-0", probability=0.05, model_version=v2)
    escapes.record_reported_escape(
        line=line,
        serial="B-0",
        note="failed leak test",
        user=make_user("sam", "supervisor", [line]),
    )
    # the audits' rejects can still be undone: only the reported escape counts yet
    counts = escapes.escape_counts(line)
    assert [(c.model_version, c.total) for c in counts] == [("press-1-v2", 1)]
    passed = timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    Escape.objects.update(recorded_at=F("recorded_at") - passed)
    counts = escapes.escape_counts(line)
    assert [(c.model_version, c.audit, c.reported, c.total) for c in counts] == [
        ("press-1-v2", 0, 1, 1),
        ("press-1-v1", 3, 0, 3),
    ]


# Reported by a supervisor --------------------------------------------------------------------


@pytest.fixture
def shared_serial(audited_line, make_user):
    """Two stations of a full line inspected SN-7 (the model accepted both); cam-1 also SN-1."""
    line, cam1, version, inspector = audited_line("full")
    services.set_line_settings(line=line, changed_by="cli", audit_fraction=0.0)
    cam1.line.refresh_from_db()
    cam2, _ = services.create_station(line=line, name="cam-2")
    for station in (cam1, cam2):
        seed_inspection(station, "SN-7", probability=0.05, model_version=version)
    seed_inspection(cam1, "SN-1", probability=0.05, model_version=version)
    seed_inspection(cam1, "SN-R", probability=0.95, model_version=version)
    supervisor = make_user("sam", role="supervisor", lines=[line])
    client = Client()
    client.force_login(supervisor)
    return line, cam1, cam2, supervisor, client


def report(client, line, **data):
    return client.post(reverse("inspection:line-escape", args=[line.pk]), data)


def test_a_supervisor_records_an_escape_by_serial_and_sees_it_on_the_line_page(shared_serial):
    line, cam1, _cam2, supervisor, client = shared_serial
    response = report(client, line, serial=" SN-1 ", note="customer return #4411")
    assert response.status_code == 302
    escape = Escape.objects.get()
    assert (escape.inspection.external_id, escape.inspection.station, escape.source) == (
        "SN-1",
        cam1,
        "reported",
    )
    assert (escape.recorded_by, escape.note) == (supervisor, "customer return #4411")
    page = client.get(reverse("inspection:line", args=[line.pk])).content.decode()
    assert 'data-version="press-1-v1"><td>press-1-v1</td><td class="num">0</td>' in page
    assert f'href="/inspections/{escape.inspection_id}/">SN-1</a>' in page
    assert "customer return #4411" in page
    detail = client.get(reverse("inspection:detail", args=[escape.inspection_id])).content
    assert b'id="escape-mark"' in detail
    # reported twice: still one escape
    response = report(client, line, serial="SN-1", note="again")
    assert response.status_code == 302 and Escape.objects.count() == 1


def test_an_ambiguous_serial_asks_for_the_station(shared_serial):
    line, _cam1, cam2, _supervisor, client = shared_serial
    response = report(client, line, serial="SN-7", note="downstream test failed")
    assert response.status_code == 200
    form = response.context["escape_form"]
    assert "stations cam-1, cam-2 each inspected an item 'SN-7'" in form.errors["station"][0]
    assert [s.name for s in form.fields["station"].queryset.order_by("name")] == ["cam-1", "cam-2"]
    assert not Escape.objects.exists()
    response = report(client, line, serial="SN-7", station=cam2.pk, note="downstream test failed")
    assert response.status_code == 302
    assert Escape.objects.get().inspection.station == cam2


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"serial": "SN-404", "note": "x"}, "serial", "no item of line press-1 has the serial"),
        ({"serial": "SN-R", "note": "x"}, "serial", "the model rejected item 'SN-R'"),
        ({"serial": "SN-1", "note": ""}, "note", "This field is required."),
        ({"serial": "", "note": "x"}, "serial", "This field is required."),
    ],
)
def test_a_bad_report_is_a_form_error_and_stores_nothing(shared_serial, data, field, message):
    line, *_rest, client = shared_serial
    response = report(client, line, **data)
    assert response.status_code == 200
    assert message in " ".join(response.context["escape_form"].errors[field])
    assert not Escape.objects.exists()


def test_a_human_decided_item_is_no_model_escape(make_line, station_with_token, make_user):
    line = make_line(name="manual", level="human_only")
    station, _ = station_with_token(line)
    inspection = seed_inspection(station, "SN-1")
    ivy = make_user("ivy", lines=[line])
    decide_review_item(item=inspection.review_item, inspector=ivy, outcome="accept")
    with pytest.raises(NotAModelAccept, match="decided by human, not the model"):
        escapes.record_reported_escape(line=line, serial="SN-1", note="return", user=ivy)
    assert not Escape.objects.exists()


def test_the_service_names_the_candidates_and_finds_nothing_on_another_line(
    shared_serial, make_line
):
    line, cam1, cam2, supervisor, _client = shared_serial
    with pytest.raises(SerialAmbiguous) as ambiguous:
        escapes.record_reported_escape(line=line, serial="SN-7", note="x", user=supervisor)
    assert [s.name for s in ambiguous.value.stations] == ["cam-1", "cam-2"]
    other = make_line(name="press-2")
    with pytest.raises(SerialNotFound):
        escapes.record_reported_escape(line=other, serial="SN-1", note="x", user=supervisor)


@pytest.mark.parametrize("role", ["inspector", "data_team"])
def test_only_line_control_records_escapes(shared_serial, make_user, role):
    line, *_rest = shared_serial
    client = Client()
    client.force_login(make_user("u", role=role, lines=[line]))
    assert report(client, line, serial="SN-1", note="x").status_code == 403
    assert not Escape.objects.exists()


def test_another_lines_supervisor_gets_a_404(shared_serial, make_line, make_user):
    line, *_rest = shared_serial
    other = make_line(name="press-9")
    client = Client()
    client.force_login(make_user("tom", role="supervisor", lines=[other]))
    assert report(client, line, serial="SN-1", note="x").status_code == 404
    assert not Escape.objects.exists()


# Evidence rules on the line page --------------------------------------------------------------


def test_the_evidence_rules_are_line_settings_in_the_audit_log(shared_serial):
    line, *_rest, client = shared_serial
    response = client.post(
        reverse("inspection:line-rules", args=[line.pk]),
        {
            "audit_pct": "5",
            "agreement_target_pct": "97.5",
            "escape_limit_pct": "10",
            "reason": "tighter",
        },
    )
    assert response.status_code == 302
    line.refresh_from_db()
    assert (line.audit_fraction, line.agreement_target, line.escape_rate_limit) == (
        0.05,
        0.975,
        0.1,
    )
    logged = (
        LineChange.objects.filter(
            line=line, field__in=["audit_fraction", "agreement_target", "escape_rate_limit"]
        )
        .exclude(changed_by="cli")
        .values_list("field", "old_value", "new_value", "changed_by", "reason")
    )
    assert sorted(logged) == [
        ("agreement_target", "0.95", "0.975", "sam", "tighter"),
        ("audit_fraction", "0.0", "0.05", "sam", "tighter"),
        ("escape_rate_limit", "0.25", "0.1", "sam", "tighter"),
    ]


def test_bad_evidence_rules_change_nothing(shared_serial):
    line, *_rest, client = shared_serial
    changes = LineChange.objects.count()
    response = client.post(
        reverse("inspection:line-rules", args=[line.pk]),
        {"audit_pct": "150", "agreement_target_pct": "95", "escape_limit_pct": "x"},
    )
    assert response.status_code == 200
    errors = response.context["rules_form"].errors
    assert set(errors) == {"audit_pct", "escape_limit_pct"}
    assert LineChange.objects.count() == changes


def test_an_escape_is_hidden_from_the_auditor_until_the_audit_is_final(audited_line, settings):
    line, station, version, inspector = audited_line("full")
    inspection = seed_inspection(station, "SN-1", probability=0.05, model_version=version)
    decide_review_item(item=inspection.review_item, inspector=inspector, outcome="reject")
    client = Client()
    client.force_login(inspector)
    url = reverse("inspection:detail", args=[inspection.pk])
    page = client.get(url).content.decode()
    # inside the undo window: neither the model's answer, its decision, nor the escape
    assert 'id="escape-mark"' not in page and "0.0500" not in page
    assert "model disagreed" not in page and "accept by model" not in page
    ReviewItem.objects.filter(pk=inspection.review_item.pk).update(
        decided_at=inspection.review_item.created_at
        - timedelta(seconds=settings.LOUPE_UNDO_WINDOW_S + 1)
    )
    page = client.get(url).content.decode()
    assert 'id="escape-mark"' in page and "0.0500" in page and "model disagreed" in page
