"""Per-user API tokens for scripts: issued, checked and revoked here, and nowhere else.

A token is shown once, when it is issued; only its sha256 is stored (as for station tokens).
"""

import secrets
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import ApiToken
from inspection.services import hash_token
from loupe.common.errors import InvalidInput, LoupeError

# "lpu_" (user) beside the stations' "lps_": a leaked token says what it opens
API_TOKEN_PREFIX = "lpu_"
MAX_NAME_LENGTH = ApiToken._meta.get_field("name").max_length
# a token made on the page or by the command lasts this long unless asked otherwise
DEFAULT_DAYS = 90
MAX_DAYS = 365
# Writing last_used_at on every request would turn each read into a write; a minute is exact
# enough to tell a live script from a forgotten token.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenRefused(LoupeError):
    status_code = 401
    code = "not_authenticated"


def issue_api_token(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token for the user and return it with the raw token, which is not stored and
    cannot be shown again. `expires_at=None` never expires.

    Raises InvalidInput for an empty or too long name, or an expiry that has passed.
    """
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a token needs a name (what it is for)", field="name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"a token name has at most {MAX_NAME_LENGTH} characters", field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("the expiry must be in the future", field="expires_at")
    raw = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        token_hash=hash_token(raw),
        token_prefix=raw[:12],
        expires_at=expires_at,
    )
    return token, raw


def expiry_in_days(days: int) -> datetime:
    """The expiry of a token made now to last `days` (1 to MAX_DAYS). Raises InvalidInput."""
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"a token lasts from 1 to {MAX_DAYS} days", field="days")
    return timezone.now() + timedelta(days=days)


@transaction.atomic
def revoke_api_token(*, token: ApiToken) -> bool:
    """Stop the token working at once. Safe to repeat: returns False if it was already
    revoked, and the first revocation time is kept."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    token.refresh_from_db(fields=["revoked_at"])
    return revoked == 1


def authenticate_api_token(raw: str) -> ApiToken:
    """The token a request presents, with its user, if it may be used now; its last use is
    recorded at most once per LAST_USED_RESOLUTION.

    Raises ApiTokenRefused, saying whether the token is unknown, revoked or expired.
    """
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw)).first()
    if token is None:
        raise ApiTokenRefused("the API token is not valid")
    now = timezone.now()
    state = token.state(now)
    if state != "active":
        raise ApiTokenRefused(f"the API token {token.token_prefix}… is {state}")
    if not token.user.is_active:
        raise ApiTokenRefused("the API token's user is deactivated")
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).filter(
            Q(last_used_at=None) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ).update(last_used_at=now)
        token.last_used_at = now
    return token


def tokens_of(user):
    """The user's tokens, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user)
