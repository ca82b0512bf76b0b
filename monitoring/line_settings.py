"""A line's monitoring settings (LineMonitoring): the webhook, stepping back, and the reference
reset. The only writer of LineMonitoring; every change goes to the line's audit log."""

from datetime import datetime
from urllib.parse import urlsplit

from django.db import transaction
from django.utils import timezone

from inspection.models import AutomationLevel, Line
from inspection.services import log_line_event
from loupe.common.errors import InvalidInput
from monitoring.models import LineMonitoring

# the levels stepping back may stop at: below full, in the order it walks down
STEP_BACK_FLOORS = (
    AutomationLevel.PARTIAL,
    AutomationLevel.ASSIST,
    AutomationLevel.SHADOW,
    AutomationLevel.HUMAN_ONLY,
)
EDITABLE = (
    "webhook_url",
    "webhook_secret",
    "step_back_enabled",
    "step_back_floor",
    "drift_audit_fraction",
    "drift_lowers_level",
)


def settings_for(line: Line) -> LineMonitoring:
    """The line's settings, created with the defaults on first use. Safe to call concurrently."""
    row, _ = LineMonitoring.objects.get_or_create(line=line)
    return row


def settings_or_defaults(line: Line) -> LineMonitoring:
    """The line's settings, or unsaved defaults: for pages, which never write."""
    return LineMonitoring.objects.filter(line=line).first() or LineMonitoring(line=line)


def reference_since(line: Line | int) -> datetime | None:
    """Since when the line's (a Line or its id) drift windows and concept references count
    (None: always)."""
    line_id = line.pk if isinstance(line, Line) else line
    return (
        LineMonitoring.objects.filter(line_id=line_id)
        .values_list("reference_since", flat=True)
        .first()
    )


def validate_monitoring_settings(values: dict) -> None:
    """Raises InvalidInput on an unknown field or a bad value."""
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"unknown monitoring setting {', '.join(sorted(unknown))}")
    url = values.get("webhook_url", "")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > 500:
            raise InvalidInput("the webhook URL must be an http:// or https:// address")
    if len(values.get("webhook_secret", "")) > 200:
        raise InvalidInput("the webhook secret is at most 200 characters")
    if "step_back_floor" in values and values["step_back_floor"] not in STEP_BACK_FLOORS:
        raise InvalidInput(f"the step-back floor must be one of {', '.join(STEP_BACK_FLOORS)}")
    fraction = values.get("drift_audit_fraction", 0.0)
    if not isinstance(fraction, float | int) or not 0.0 <= fraction <= 1.0:
        raise InvalidInput("the audit rate on data drift must be within 0..1")


@transaction.atomic
def update_line_monitoring(*, line: Line, changed_by: str, reason: str = "", **values):
    """Change the line's monitoring settings; each changed one goes to the audit log (the
    secret's value never does). Raises InvalidInput, changing nothing. Safe to repeat."""
    validate_monitoring_settings(values)
    settings_for(line)
    row = LineMonitoring.objects.select_for_update().get(line=line)
    changed = []
    for field in EDITABLE:
        if field in values and getattr(row, field) != values[field]:
            old, new = getattr(row, field), values[field]
            if field == "webhook_secret":
                old, new = ("set" if old else ""), ("set" if new else "")
            log_line_event(
                line=line, field=field, old=old, new=new, changed_by=changed_by, reason=reason
            )
            setattr(row, field, values[field])
            changed.append(field)
    if changed:
        row.save(update_fields=[*changed, "updated_at"])
    return row


@transaction.atomic
def set_reference_since(
    *, line: Line, changed_by: str, reason: str, now: datetime | None = None
) -> LineMonitoring:
    """The reference reset for a planned changeover: drift windows and the concept-drift
    reference start over from `now`. Logged. The caller resolves the drift alerts."""
    now = now or timezone.now()
    settings_for(line)
    row = LineMonitoring.objects.select_for_update().get(line=line)
    log_line_event(
        line=line,
        field="reference_since",
        old=row.reference_since.isoformat() if row.reference_since else "",
        new=now.isoformat(),
        changed_by=changed_by,
        reason=reason,
    )
    row.reference_since = now
    row.save(update_fields=["reference_since", "updated_at"])
    return row
