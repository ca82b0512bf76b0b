"""The four roles of PRODUCT.md as Django groups, and what each may do.

A role is a group; what a user may see is also limited by the lines they are assigned to
(accounts.access), except for admins, who see every line.
"""

from django.contrib.auth.models import Group, Permission

INSPECTOR = "inspector"
SUPERVISOR = "supervisor"
DATA_TEAM = "data_team"
ADMIN = "admin"
ROLES = (INSPECTOR, SUPERVISOR, DATA_TEAM, ADMIN)

# app_label.codename of Django's model permissions
_VIEW = ["inspection.view_inspection", "inspection.view_line", "labeling.view_annotationrevision"]
_REVIEW = ["inspection.change_reviewitem"]
_LABEL = ["labeling.add_annotationrevision"]
_CONTROL = ["inspection.change_line"]
_DATASETS = [
    "datasets.view_datasetversion",
    "datasets.add_datasetversion",
    "datasets.add_datasetexport",
    "datasets.add_datasetimport",
]

PERMISSIONS = {
    INSPECTOR: _VIEW + _REVIEW + _LABEL,
    SUPERVISOR: _VIEW + _REVIEW + _LABEL + _CONTROL + _DATASETS,
    DATA_TEAM: _VIEW + _LABEL + _DATASETS,
    ADMIN: _VIEW + _REVIEW + _LABEL + _CONTROL + _DATASETS,
}

# What each role can do in the browser, for the navigation and for checks in views
CAN_REVIEW = "inspection.change_reviewitem"
CAN_LABEL = "labeling.add_annotationrevision"
CAN_CONTROL_LINES = "inspection.change_line"


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


def role_of(user) -> str | None:
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    return next((role for role in (ADMIN, SUPERVISOR, DATA_TEAM, INSPECTOR) if role in names), None)


def is_admin(user) -> bool:
    return user.is_superuser or user.groups.filter(name=ADMIN).exists()
