"""The roles of loupe.common.permissions as Django groups."""

from django.contrib.auth.models import Group, Permission

from loupe.common.permissions import PERMISSIONS


def ensure_role_groups() -> None:
    """Create or update the role groups with exactly their permissions (idempotent)."""
    for role, names in PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        perms = []
        for name in names:
            app_label, codename = name.split(".")
            perms.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        group.permissions.set(perms)
