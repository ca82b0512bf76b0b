"""Per-user API tokens: hashed at rest, shown once, several per user, each revocable, with an
expiry and a last-used time; the datasets API accepts them and nothing else a script sends."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import ApiToken
from accounts.tokens import authenticate_api_token, issue_api_token, revoke_api_token
from loupe.common.errors import InvalidInput

API = "/api/v1/datasets/"


@pytest.fixture
def dana(db):
    from accounts.services import create_user
    from inspection import services

    services.create_line(name="line-a")
    return create_user(
        username="dana", role="data_team", line_names=["line-a"], password="a-long-password-42"
    )


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


def test_a_token_is_stored_only_as_its_hash(dana):
    token, raw = issue_api_token(user=dana, name="nightly export")
    stored = ApiToken.objects.get()
    assert raw.startswith("lpu_") and len(raw) > 40
    assert stored.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in str(ApiToken.objects.values().get())
    assert stored.token_prefix == raw[:12]
    assert (stored.user, stored.name, stored.expires_at) == (dana, "nightly export", None)


def test_a_user_has_several_tokens_and_revoking_one_leaves_the_others(client, dana):
    first, first_raw = issue_api_token(user=dana, name="one")
    _, second_raw = issue_api_token(user=dana, name="two")
    assert first_raw != second_raw
    assert client.get(API, **bearer(first_raw)).status_code == 200
    assert revoke_api_token(token=first) is True
    revoked = client.get(API, **bearer(first_raw))
    assert revoked.status_code == 401
    assert revoked.json() == {
        "error": "authentication_failed",
        "detail": f"the API token {first.token_prefix}… is revoked",
    }
    assert client.get(API, **bearer(second_raw)).status_code == 200
    when = ApiToken.objects.get(pk=first.pk).revoked_at
    assert revoke_api_token(token=first) is False  # repeating changes nothing
    assert ApiToken.objects.get(pk=first.pk).revoked_at == when


def test_an_expired_token_is_refused_with_json(client, dana):
    token, raw = issue_api_token(
        user=dana, name="short", expires_at=timezone.now() + timedelta(seconds=30)
    )
    assert client.get(API, **bearer(raw)).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    expired = client.get(API, **bearer(raw))
    assert expired.status_code == 401
    assert expired.json()["detail"] == f"the API token {token.token_prefix}… is expired"


def test_a_deactivated_users_token_is_refused(client, dana):
    _, raw = issue_api_token(user=dana, name="one")
    dana.is_active = False
    dana.save()
    assert client.get(API, **bearer(raw)).status_code == 401


@pytest.mark.parametrize(
    ("name", "expires_in", "field"),
    [
        ("", timedelta(days=1), "name"),
        ("x" * 101, None, "name"),
        ("ok", timedelta(0), "expires_at"),
    ],
)
def test_a_token_needs_a_name_and_a_future_expiry(dana, name, expires_in, field):
    expires_at = None if expires_in is None else timezone.now() + expires_in
    with pytest.raises(InvalidInput) as refused:
        issue_api_token(user=dana, name=name, expires_at=expires_at)
    assert refused.value.field == field
    assert not ApiToken.objects.exists()


def test_last_use_is_written_at_most_once_a_minute(dana):
    token, raw = issue_api_token(user=dana, name="one")
    assert token.last_used_at is None
    authenticate_api_token(raw)
    first = ApiToken.objects.get().last_used_at
    assert first is not None
    authenticate_api_token(raw)
    assert ApiToken.objects.get().last_used_at == first
    ApiToken.objects.update(last_used_at=first - timedelta(minutes=2))
    authenticate_api_token(raw)
    assert ApiToken.objects.get().last_used_at > first


def test_a_token_never_opens_the_station_api(client, dana):
    _, raw = issue_api_token(user=dana, name="one")
    response = client.get("/api/v1/inspections/1/", **bearer(raw))
    assert response.status_code == 401


def test_a_user_creates_sees_once_and_revokes_a_token_on_their_page(client, dana):
    client.force_login(dana)
    created = client.post("/account/api-tokens/", {"name": "nightly export", "days": 30})
    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    token = ApiToken.objects.get()
    raw = created.context["new_token"]["raw"]
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw in created.content.decode()
    days = (token.expires_at - timezone.now()) / timedelta(days=1)
    assert 29.9 < days <= 30
    listed = client.get("/account/api-tokens/").content.decode()
    assert "nightly export" in listed and token.token_prefix in listed and raw not in listed
    revoked = client.post(f"/account/api-tokens/{token.pk}/revoke/")
    assert revoked.status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
    assert client.get(API, **bearer(raw)).status_code == 401


@pytest.mark.parametrize("form", [{"name": "", "days": 30}, {"name": "x", "days": 400}])
def test_the_page_refuses_a_token_without_a_name_or_too_long_a_life(client, dana, form):
    client.force_login(dana)
    assert client.post("/account/api-tokens/", form).status_code == 400
    assert not ApiToken.objects.exists()


def test_nobody_revokes_or_sees_another_users_token(client, dana):
    from accounts.services import create_user

    token, _ = issue_api_token(user=dana, name="dana's")
    olga = create_user(
        username="olga", role="data_team", line_names=["line-a"], password="a-long-password-42"
    )
    client.force_login(olga)
    assert "dana&#x27;s" not in client.get("/account/api-tokens/").content.decode()
    assert client.post(f"/account/api-tokens/{token.pk}/revoke/").status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_an_operator_creates_a_token_with_the_command(dana):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_token", "dana", "--name", "cron", "--days", "7", stdout=out, stderr=err
    )
    raw = out.getvalue().strip()
    token = authenticate_api_token(raw)
    assert (token.user, token.name) == (dana, "cron")
    assert timedelta(days=6.9) < token.expires_at - timezone.now() <= timedelta(days=7)
    assert "shown once" in err.getvalue()
    with pytest.raises(CommandError, match="no active user named 'nobody'"):
        call_command("create_api_token", "nobody", "--name", "cron", stdout=out)


def test_an_admin_lists_and_revokes_tokens(client, dana):
    from accounts.services import create_user

    token, raw = issue_api_token(user=dana, name="cron")
    admin = create_user(username="root", role="admin", line_names=[], password="a-long-password-42")
    client.force_login(admin)
    listing = client.get("/admin/accounts/apitoken/").content.decode()
    assert "cron" in listing and token.token_prefix in listing and raw not in listing
    answer = client.post(
        "/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}
    )
    assert answer.status_code == 302
    assert ApiToken.objects.get().revoked_at is not None
