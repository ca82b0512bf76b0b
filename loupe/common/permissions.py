"""The four roles of PRODUCT.md and the Django permissions each holds: the one place that
names a permission. A role is a group (accounts.roles creates them); what a user may see is
also limited by the lines they work (inspection.selectors), except for admins."""

INSPECTOR = "inspector"
SUPERVISOR = "supervisor"
DATA_TEAM = "data_team"
ADMIN = "admin"
ROLES = (INSPECTOR, SUPERVISOR, DATA_TEAM, ADMIN)

# What each role can do in the browser, for the navigation and for checks in views
CAN_VIEW_INSPECTIONS = "inspection.view_inspection"
CAN_VIEW_LINES = "inspection.view_line"
CAN_VIEW_LABELS = "labeling.view_annotationrevision"
CAN_REVIEW = "inspection.change_reviewitem"
CAN_LABEL = "labeling.add_annotationrevision"
CAN_CONTROL_LINES = "inspection.change_line"
CAN_VIEW_DATASETS = "datasets.view_datasetversion"
CAN_FREEZE_DATASETS = "datasets.add_datasetversion"
CAN_EXPORT_DATASETS = "datasets.add_datasetexport"
CAN_IMPORT_DATASETS = "datasets.add_datasetimport"
# starting and retrying retraining runs: the data team's too (PRODUCT.md); promoting,
# discarding and rolling back a model stays line control
CAN_START_RETRAINING = "ml.add_pipelinerun"

# The same, by the names templates use: {% if can.review %} (accounts.context_processors)
CAPABILITIES = {
    "review": CAN_REVIEW,
    "label": CAN_LABEL,
    "control_lines": CAN_CONTROL_LINES,
    "view_lines": CAN_VIEW_LINES,
    "view_labels": CAN_VIEW_LABELS,
    "view_datasets": CAN_VIEW_DATASETS,
    "import_datasets": CAN_IMPORT_DATASETS,
    "start_retraining": CAN_START_RETRAINING,
}

_VIEW = [CAN_VIEW_INSPECTIONS, CAN_VIEW_LINES, CAN_VIEW_LABELS]
_DATASETS = [
    CAN_VIEW_DATASETS,
    CAN_FREEZE_DATASETS,
    CAN_EXPORT_DATASETS,
    CAN_IMPORT_DATASETS,
    CAN_START_RETRAINING,
]

# app_label.codename of Django's model permissions
PERMISSIONS = {
    INSPECTOR: _VIEW + [CAN_REVIEW, CAN_LABEL],
    SUPERVISOR: _VIEW + [CAN_REVIEW, CAN_LABEL, CAN_CONTROL_LINES] + _DATASETS,
    DATA_TEAM: _VIEW + [CAN_LABEL] + _DATASETS,
    ADMIN: _VIEW + [CAN_REVIEW, CAN_LABEL, CAN_CONTROL_LINES] + _DATASETS,
}


def role_of(user) -> str | None:
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    return next((role for role in (ADMIN, SUPERVISOR, DATA_TEAM, INSPECTOR) if role in names), None)


def is_admin(user) -> bool:
    return user.is_superuser or user.groups.filter(name=ADMIN).exists()
