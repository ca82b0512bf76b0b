"""Creating users with a role and their lines."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.roles import ensure_role_groups
from inspection import services as inspection_services
from inspection.models import Line
from loupe.common.errors import InvalidInput
from loupe.common.permissions import ADMIN, ROLES


@transaction.atomic
def create_user(
    *, username: str, role: str, line_names: list[str], password: str, changed_by: str = "cli"
):
    """Create a user in one role, assigned to the named lines. Raises InvalidInput."""
    User = get_user_model()
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if not username or User.objects.filter(username=username).exists():
        raise InvalidInput(f"user name {username!r} is empty or taken", field="username")
    lines = list(Line.objects.filter(name__in=line_names))
    missing = sorted(set(line_names) - {line.name for line in lines})
    if missing:
        raise InvalidInput(f"no line named {', '.join(missing)}", field="line")
    if not lines and role != ADMIN:
        raise InvalidInput("a user needs at least one --line (admins see every line)", field="line")
    # admins manage users and lines in Django admin, which needs the superuser flag
    user = User(username=username, is_staff=role == ADMIN, is_superuser=role == ADMIN)
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidInput(" ".join(error.messages), field="password") from error
    user.set_password(password)
    user.save()
    ensure_role_groups()
    user.groups.add(Group.objects.get(name=role))
    for line in lines:
        inspection_services.add_line_member(
            line=line, user=user, changed_by=changed_by, reason=f"new {role}"
        )
    return user
