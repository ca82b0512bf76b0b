"""The console's pages over HTTP: who sees what, the confirmation step, CSRF."""

import pytest
from django.test import Client
from django.urls import reverse

from inspection import console
from inspection.models import Line, LineChange


def settings_of(line):
    line = Line.objects.get(pk=line.pk)
    return line.automation_level, line.accept_threshold, line.reject_threshold


def change_url(line):
    return reverse("inspection:line-change", args=[line.pk])


def proposal(level="partial", accept="0.1", reject="0.9", **extra):
    return {
        "automation_level": level,
        "accept_threshold": accept,
        "reject_threshold": reject,
        **extra,
    }


@pytest.fixture
def supervisor(make_user, shadow_line, client):
    user = make_user("sam", role="supervisor", lines=[shadow_line])
    client.force_login(user)
    return user


@pytest.mark.parametrize("role", ["inspector", "supervisor", "data_team", "admin"])
def test_every_role_sees_the_lines_page_with_its_own_lines(role, make_user, shadow_line, make_line):
    other = make_line(name="press-9")
    client = Client()
    client.force_login(make_user("u", role=role, lines=[shadow_line]))
    response = client.get(reverse("inspection:lines"))
    assert response.status_code == 200
    names = [row["line"].name for row in response.context["rows"]]
    assert names == (["press-4", "press-9"] if role == "admin" else ["press-4"])
    assert other.name not in response.content.decode() or role == "admin"


def test_lines_page_shows_todays_counts(supervisor, client):
    response = client.get(reverse("inspection:lines"))
    row = response.context["rows"][0]
    counts = row["counts"]
    assert (counts.inspected, counts.sent_to_review, counts.agreement_items) == (8, 8, 8)
    assert counts.agreeing == 5
    assert "62.5%" in response.content.decode()


@pytest.mark.parametrize("role", ["inspector", "supervisor"])
def test_another_lines_page_is_not_found(role, make_user, shadow_line, make_line):
    other = make_line(name="press-9")
    client = Client()
    client.force_login(make_user("u", role=role, lines=[shadow_line]))
    assert client.get(reverse("inspection:line", args=[other.pk])).status_code == 404
    assert client.get(reverse("inspection:line", args=[shadow_line.pk])).status_code == 200


def test_line_page_shows_evidence_form_and_audit_log(supervisor, client, shadow_line):
    response = client.get(reverse("inspection:line", args=[shadow_line.pk]))
    page = response.content.decode()
    assert response.context["form"] is not None
    evidence = response.context["evidence"]
    assert (evidence.unbiased_total, evidence.unbiased.agreeing) == (8, 5)
    unbiased = page[page.index('data-evidence="unbiased"') :]
    assert "62.5% <span" in unbiased and "34.8–83.9%" in unbiased  # agreement, its bounds
    assert "50.0% (18.2–81.8%)" in unbiased  # 2 of 4 defective items missed
    assert 'id="gate-verdict">needs an override' in page
    assert "would have decided 0% of the measured unbiased items" in page  # shadow decides none
    assert 'id="audit-log"' in page and "active_model" in page  # activate_model's entry


def test_an_inspector_sees_no_change_form(make_user, shadow_line, client):
    client.force_login(make_user("ivo", role="inspector", lines=[shadow_line]))
    response = client.get(reverse("inspection:line", args=[shadow_line.pk]))
    assert response.context["form"] is None
    assert 'id="line-change-form"' not in response.content.decode()


@pytest.mark.parametrize("role", ["inspector", "data_team"])
@pytest.mark.parametrize("confirm", [False, True])
def test_no_change_without_the_permission(role, confirm, make_user, shadow_line, client):
    client.force_login(make_user("u", role=role, lines=[shadow_line]))
    data = (
        proposal(confirm="1", line_version=console.line_version(shadow_line))
        if confirm
        else proposal()
    )
    changes = LineChange.objects.count()
    assert client.post(change_url(shadow_line), data).status_code == 403
    assert client.get(change_url(shadow_line)).status_code == 403
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)
    assert LineChange.objects.count() == changes


def test_a_supervisor_cannot_change_another_line(supervisor, client, make_line):
    other = make_line(name="press-9")
    data = proposal(level="assist", confirm="1", line_version=console.line_version(other))
    assert client.post(change_url(other), data).status_code == 404
    assert settings_of(other) == ("human_only", 0.2, 0.8)


def test_get_on_the_change_page_leads_to_the_line(supervisor, client, shadow_line):
    response = client.get(change_url(shadow_line))
    assert response.status_code == 302
    assert response.url == reverse("inspection:line", args=[shadow_line.pk])


def test_the_confirmation_states_evidence_and_effect_and_changes_nothing(
    supervisor, client, shadow_line, lenient, settings
):
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 8
    changes = LineChange.objects.count()
    response = client.post(change_url(shadow_line), proposal(reason="good agreement"))
    assert response.status_code == 200
    assert response.templates[0].name == "inspection/line_change_confirm.html"
    page = response.content.decode()
    assert 'id="gate-verdict">passes' in page
    for rule in ("minimum", "agreement", "escapes"):
        assert f'data-rule="{rule}"' in page
    # 0.1 / 0.9 decides 0.05, 0.10, 0.90, 0.95 (50%), wrong on 0.90
    assert "would have auto-decided <b>50%</b>" in page
    assert "<b>1 disagreement</b>" in page
    assert 'name="confirm" value="1"' in page
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)
    assert LineChange.objects.count() == changes


def test_confirming_applies_and_logs_the_change(supervisor, client, shadow_line, lenient, settings):
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 8
    data = proposal(
        reason="good agreement", confirm="1", line_version=console.line_version(shadow_line)
    )
    response = client.post(change_url(shadow_line), data, follow=True)
    assert response.redirect_chain == [(reverse("inspection:line", args=[shadow_line.pk]), 302)]
    assert settings_of(shadow_line) == ("partial", 0.1, 0.9)
    rows = shadow_line.changes.exclude(field__in=["active_model", "members"]).values_list(
        "field", "old_value", "new_value", "changed_by", "reason"
    )
    assert sorted(rows) == [
        ("accept_threshold", "0.2", "0.1", "sam", "good agreement"),
        ("automation_level", "shadow", "partial", "sam", "good agreement"),
        ("reject_threshold", "0.8", "0.9", "sam", "good agreement"),
    ]
    page = response.content.decode()
    assert "press-4 changed: level shadow → partial; accept threshold 0.2 → 0.1" in page
    assert "good agreement" in page  # in the audit log


def test_a_raise_below_the_minimum_is_refused_without_override(supervisor, client, shadow_line):
    # the default minimum is 200; the line has 8 unbiased items
    for data in (proposal(), proposal(confirm="1", line_version=console.line_version(shadow_line))):
        response = client.post(change_url(shadow_line), data)
        assert response.status_code == 200
        assert response.templates[0].name == "inspection/line.html"
        assert "at least 200 unbiased items (this line: 8)" in (
            " ".join(response.context["form"].errors["automation_level"])
        )
        assert "Tick the override and write a reason" in response.content.decode()
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)
    assert not shadow_line.changes.exclude(field__in=["active_model", "members"]).exists()


def test_an_override_needs_a_reason(supervisor, client, shadow_line):
    response = client.post(change_url(shadow_line), proposal(override="on", reason="  "))
    assert response.context["form"].errors["reason"] == [
        "Write why you override the evidence rules."
    ]
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)


def test_an_override_with_a_reason_goes_through_and_is_logged(supervisor, client, shadow_line):
    response = client.post(
        change_url(shadow_line), proposal(level="partial", override="on", reason="vendor tests")
    )
    assert 'id="confirm-override"' in response.content.decode()
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)
    # the confirmation page's own hidden fields, posted back
    form = response.context["form"]
    data = {name: form[name].value() for name in form.fields}
    data.update(confirm="1", line_version=response.context["line_version"])
    client.post(change_url(shadow_line), data)
    assert settings_of(shadow_line) == ("partial", 0.1, 0.9)
    reason = shadow_line.changes.get(field="automation_level").reason
    assert reason.startswith(
        "Override: Raising to Partial automation needs unbiased evidence of the active model: "
        "at least 200 unbiased items (this line: 8); agreement lower bound ≥ 95.0%"
    )
    assert reason.endswith(" vendor tests")


def test_lowering_a_level_needs_no_evidence(make_line, make_user, client):
    line = make_line(name="press-2", level="partial")
    client.force_login(make_user("sam", lines=[line]))
    data = proposal(
        level="assist",
        accept="0.2",
        reject="0.8",
        confirm="1",
        line_version=console.line_version(line),
    )
    client.post(change_url(line), data)
    assert settings_of(line) == ("assist", 0.2, 0.8)


@pytest.mark.parametrize(
    ("accept", "reject", "message"),
    [
        ("0.9", "0.5", "Invalid thresholds"),
        ("0.5", "0.5", "Invalid thresholds"),
        ("-0.1", "0.5", "greater than or equal to 0"),
        ("0.1", "1.5", "less than or equal to 1"),
        ("abc", "0.5", "Enter a number"),
    ],
)
@pytest.mark.parametrize("confirm", [False, True])
def test_invalid_thresholds_are_a_form_error_and_change_nothing(
    accept, reject, message, confirm, supervisor, client, shadow_line
):
    data = proposal(level="assist", accept=accept, reject=reject)
    if confirm:
        data.update(confirm="1", line_version=console.line_version(shadow_line))
    changes = LineChange.objects.count()
    response = client.post(change_url(shadow_line), data)
    assert response.templates[0].name == "inspection/line.html"
    assert message in str(response.context["form"].errors)
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)
    assert LineChange.objects.count() == changes


def test_nothing_to_change_is_a_form_error(supervisor, client, shadow_line):
    response = client.post(
        change_url(shadow_line), proposal(level="shadow", accept="0.2", reject="0.8")
    )
    assert response.context["form"].non_field_errors() == [
        "Nothing to change: these are the line's settings now."
    ]


def test_a_stale_confirmation_is_shown_again_instead_of_applied(
    supervisor, client, shadow_line, lenient, settings
):
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 0
    stale = console.line_version(shadow_line)
    client.post(
        change_url(shadow_line),
        proposal(level="assist", accept="0.3", reject="0.7", confirm="1", line_version=stale),
    )
    response = client.post(change_url(shadow_line), proposal(confirm="1", line_version=stale))
    assert response.templates[0].name == "inspection/line_change_confirm.html"
    assert "The line changed meanwhile" in response.content.decode()
    assert settings_of(shadow_line) == ("assist", 0.3, 0.7)


def test_csrf_is_enforced(make_user, shadow_line, lenient, settings):
    lenient(shadow_line)
    settings.LOUPE_MIN_AGREEMENT_ITEMS = 0
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_user("sam", lines=[shadow_line]))
    data = proposal(confirm="1", line_version=console.line_version(shadow_line))
    assert client.post(change_url(shadow_line), data).status_code == 403
    assert settings_of(shadow_line) == ("shadow", 0.2, 0.8)

    client.get(reverse("inspection:line", args=[shadow_line.pk]))  # sets the CSRF cookie
    data["csrfmiddlewaretoken"] = client.cookies["csrftoken"].value
    assert client.post(change_url(shadow_line), data).status_code == 302
    assert settings_of(shadow_line) == ("partial", 0.1, 0.9)
