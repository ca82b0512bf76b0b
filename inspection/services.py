"""Business operations of the inspection service: lines and their audit log, stations,
receiving items and recording the model's predictions.

Every change of a line's settings, members and stations goes through a function here that
writes a LineChange, whether it comes from a page, a command or Django admin. Decisions and
an inspection's status are inspection.decisions' alone.
"""

import hashlib
import logging
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection import decisions, inference, rollouts, routing, storage
from inspection.audit_log import record_line_change
from inspection.errors import ExternalIdConflict
from inspection.images import ValidatedImage
from inspection.models import (
    DEFAULT_DEFECT_CLASSES,
    AutomationLevel,
    FailSafeAction,
    FailSafeReason,
    Inspection,
    InspectionStatus,
    Line,
    Prediction,
    PredictionRole,
    Station,
)
from inspection.predictions import record_prediction
from loupe.common.errors import InvalidInput

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "lps_"
# The disabled station of a line that imported items are recorded on: it stands for an
# archive, not a camera (datasets' imports create it; figures of live work leave it out).
IMPORT_STATION = "dataset-import"
# The disabled station that batch predictions' images are recorded on when a data-team member
# sends them to the labeling queue (status offline: never routed, never decided).
BATCH_STATION = "batch-predictions"
# Stations that stand for no camera: figures of live work (counts, agreement, drift) leave
# their items out.
OFFLINE_STATIONS = (IMPORT_STATION, BATCH_STATION)


# Lines --------------------------------------------------------------------------------------


def validate_thresholds(accept_threshold: float, reject_threshold: float) -> None:
    if not (0.0 <= accept_threshold < reject_threshold <= 1.0):
        raise InvalidInput(
            f"thresholds must satisfy 0 <= accept ({accept_threshold}) < reject "
            f"({reject_threshold}) <= 1"
        )


def validate_level(level: str) -> None:
    if level not in AutomationLevel.values:
        raise InvalidInput(
            f"unknown automation level {level!r}; choose one of {', '.join(AutomationLevel.values)}"
        )


def validate_line_settings(values: dict) -> None:
    """Each line setting's own rule (raises InvalidInput); the thresholds' order is checked
    when both are given, and by set_line_settings on the result."""
    if "accept_threshold" in values and "reject_threshold" in values:
        validate_thresholds(values["accept_threshold"], values["reject_threshold"])
    if "automation_level" in values:
        validate_level(values["automation_level"])
    if "fail_safe_action" in values and values["fail_safe_action"] not in FailSafeAction.values:
        raise InvalidInput(f"fail-safe action must be one of {', '.join(FailSafeAction.values)}")
    budget = values.get("latency_budget_ms", 1)
    if not isinstance(budget, int) or budget <= 0:
        raise InvalidInput("the latency budget must be a whole number of ms above 0")
    for share in ("audit_fraction", "agreement_target", "escape_rate_limit"):
        if not 0.0 <= values.get(share, 0.0) <= 1.0:
            raise InvalidInput(f"the {share.replace('_', ' ')} must be within 0..1")
    classes = values.get("defect_classes", ["x"])
    if (
        not isinstance(classes, list)
        or not classes
        or not all(isinstance(c, str) and c.strip() for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise InvalidInput("defect classes must be a list of distinct, non-empty names")


@transaction.atomic
def create_line(
    *,
    name: str,
    level: str = AutomationLevel.HUMAN_ONLY,
    accept_threshold: float = 0.2,
    reject_threshold: float = 0.8,
    latency_budget_ms: int = 1000,
    fail_safe_action: str = FailSafeAction.REVIEW,
    audit_fraction: float = 0.02,
    defect_classes: list[str] | None = None,
) -> Line:
    """Create a production line. Raises InvalidInput on a bad level, threshold or name taken."""
    values = {
        "automation_level": level,
        "latency_budget_ms": latency_budget_ms,
        "fail_safe_action": fail_safe_action,
        "audit_fraction": audit_fraction,
        "defect_classes": list(defect_classes or DEFAULT_DEFECT_CLASSES),
    }
    validate_line_settings(values)
    validate_thresholds(accept_threshold, reject_threshold)
    if Line.objects.filter(name=name).exists():
        raise InvalidInput(f"a line named {name!r} already exists")
    return Line.objects.create(
        name=name, accept_threshold=accept_threshold, reject_threshold=reject_threshold, **values
    )


# The settings a line's audit log covers, changed through set_line_settings
LINE_SETTINGS = (
    "automation_level",
    "accept_threshold",
    "reject_threshold",
    "latency_budget_ms",
    "fail_safe_action",
    "audit_fraction",
    "defect_classes",
    "agreement_target",  # the evidence gate's rules (inspection.evidence)
    "escape_rate_limit",
)


@transaction.atomic
def set_line_settings(*, line: Line, changed_by: str, reason: str = "", **values) -> Line:
    """Change any of LINE_SETTINGS; each changed field goes to the audit log. They apply to
    items received from now on. Raises InvalidInput (changing nothing) on an unknown field or a
    bad value. Safe to repeat: setting a value a field already has logs nothing."""
    unknown = set(values) - set(LINE_SETTINGS)
    if unknown:
        raise InvalidInput(f"unknown line setting {', '.join(sorted(unknown))}")
    validate_line_settings(values)
    line = Line.objects.select_for_update().get(pk=line.pk)
    validate_thresholds(
        values.get("accept_threshold", line.accept_threshold),
        values.get("reject_threshold", line.reject_threshold),
    )
    changed = []
    for field in LINE_SETTINGS:
        if field in values and getattr(line, field) != values[field]:
            record_line_change(line, field, getattr(line, field), values[field], changed_by, reason)
            setattr(line, field, values[field])
            changed.append(field)
    if changed:
        line.save(update_fields=[*changed, "updated_at"])
    return line


def set_line_level(*, line: Line, level: str, changed_by: str, reason: str = "") -> Line:
    """Change the automation level; it applies to items received from now on. Logged."""
    return set_line_settings(
        line=line, changed_by=changed_by, reason=reason, automation_level=level
    )


def set_line_thresholds(
    *, line: Line, accept_threshold: float, reject_threshold: float, changed_by: str, reason=""
) -> Line:
    return set_line_settings(
        line=line,
        changed_by=changed_by,
        reason=reason,
        accept_threshold=accept_threshold,
        reject_threshold=reject_threshold,
    )


@transaction.atomic
def set_line_active_model(*, line: Line, model_version, changed_by: str, reason: str = "") -> Line:
    """The line's half of activating a model: switch Line.active_model and log it.

    Only ml.services.set_active_version calls this: it keeps the registry's statuses in
    step in the same transaction. Applies from the next inspection.
    """
    line = Line.objects.select_for_update().get(pk=line.pk)
    if line.active_model_id != model_version.pk:
        old = line.active_model.name if line.active_model else None
        record_line_change(line, "active_model", old, model_version.name, changed_by, reason)
        line.active_model = model_version
        line.save(update_fields=["active_model", "updated_at"])
    return line


def log_line_event(*, line: Line, field: str, old: Any, new: Any, changed_by: str, reason=""):
    """Record in the line's audit log a change another app owns (a discarded candidate, the
    retraining policy): the log is the line's, its rows are written here."""
    record_line_change(line, field, old, new, changed_by, reason)


@transaction.atomic
def set_line_members(*, line: Line, users, changed_by: str, reason: str = "") -> Line:
    """Make `users` exactly the line's members; who joined and who left go to the audit log."""
    line = Line.objects.select_for_update().get(pk=line.pk)
    before = {user.pk: user.username for user in line.members.all()}
    after = {user.pk: user.username for user in users}
    joined = sorted(after[pk] for pk in set(after) - set(before))
    left = sorted(before[pk] for pk in set(before) - set(after))
    if joined:
        line.members.add(*[pk for pk in after if pk not in before])
        record_line_change(line, "members", "", "+" + ", +".join(joined), changed_by, reason)
    if left:
        line.members.remove(*[pk for pk in before if pk not in after])
        record_line_change(line, "members", "-" + ", -".join(left), "", changed_by, reason)
    # updated_at stays: it versions the routing policy a supervisor confirms (console)
    return line


@transaction.atomic
def add_line_member(*, line: Line, user, changed_by: str, reason: str = "") -> Line:
    """Add one member (a no-op, logging nothing, when they already work the line)."""
    line = Line.objects.select_for_update().get(pk=line.pk)
    if not line.members.filter(pk=user.pk).exists():
        line.members.add(user)
        record_line_change(line, "members", "", f"+{user.get_username()}", changed_by, reason)
    return line


# Stations -----------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


@transaction.atomic
def create_station(*, line: Line, name: str, enabled: bool = True) -> tuple[Station, str]:
    """Create a station and return it with its token. The token is not stored, only its hash."""
    if not name.strip():
        raise InvalidInput("a station needs a name")
    if Station.objects.filter(line=line, name=name).exists():
        raise InvalidInput(f"line {line.name!r} already has a station named {name!r}")
    token = _new_token()
    station = Station.objects.create(
        line=line,
        name=name,
        token_hash=hash_token(token),
        token_prefix=token[:10],
        is_enabled=enabled,
    )
    return station, token


@transaction.atomic
def rotate_station_token(*, station: Station, changed_by: str = "cli", reason: str = "") -> str:
    """Issue a new token for the station; the old one stops working at once."""
    station = Station.objects.select_for_update().select_related("line").get(pk=station.pk)
    token = _new_token()
    old_prefix = station.token_prefix
    station.token_hash, station.token_prefix = hash_token(token), token[:10]
    station.save(update_fields=["token_hash", "token_prefix"])
    record_line_change(
        station.line, f"station {station.name} token", old_prefix, token[:10], changed_by, reason
    )
    return token


@transaction.atomic
def set_station_enabled(
    *, station: Station, enabled: bool, changed_by: str, reason: str = ""
) -> Station:
    """Enable or disable a station: a disabled station's token is refused. Logged."""
    station = Station.objects.select_for_update().select_related("line").get(pk=station.pk)
    if station.is_enabled != enabled:
        record_line_change(
            station.line,
            f"station {station.name} enabled",
            station.is_enabled,
            enabled,
            changed_by,
            reason,
        )
        station.is_enabled = enabled
        station.save(update_fields=["is_enabled"])
    return station


@transaction.atomic
def move_station(*, station: Station, line: Line, changed_by: str, reason: str = "") -> Station:
    """Move a station to another line: its next items follow that line's rules. Logged on
    both lines. Raises InvalidInput when the line already has a station of that name."""
    station = Station.objects.select_for_update().select_related("line").get(pk=station.pk)
    if station.line_id == line.pk:
        return station
    if Station.objects.filter(line=line, name=station.name).exists():
        raise InvalidInput(f"line {line.name!r} already has a station named {station.name!r}")
    old_line = station.line
    record_line_change(
        old_line, "stations", f"-{station.name}", f"moved to {line.name}", changed_by, reason
    )
    record_line_change(
        line, "stations", f"from {old_line.name}", f"+{station.name}", changed_by, reason
    )
    station.line = line
    station.save(update_fields=["line"])
    return station


def _offline_station(line: Line, name: str) -> Station:
    """A station of the line that stands for no camera, made on first use and disabled: its
    token is never shown, so nothing can post as it."""
    station = Station.objects.filter(line=line, name=name).first()
    if station is None:
        station, _token = create_station(line=line, name=name, enabled=False)
    return station


def import_station(line: Line) -> Station:
    """The line's station for imported items."""
    return _offline_station(line, IMPORT_STATION)


def batch_station(line: Line) -> Station:
    """The line's station for batch predictions' images sent to the labeling queue."""
    return _offline_station(line, BATCH_STATION)


def station_for_token(token: str) -> Station | None:
    return Station.objects.select_related("line").filter(token_hash=hash_token(token)).first()


# Receiving --------------------------------------------------------------------------------


def routing_policy_snapshot(line: Line) -> dict:
    """The line's rules as copied onto each inspection when it arrives, so every decision
    can be traced to the rules it was made under. The level is the line's own; callers that
    record items under another level (imports) override it."""
    return {
        "automation_level": line.automation_level,
        "accept_threshold": line.accept_threshold,
        "reject_threshold": line.reject_threshold,
        "latency_budget_ms": line.latency_budget_ms,
        "fail_safe_action": line.fail_safe_action,
        "audit_fraction": line.audit_fraction,
    }


def _existing_for_retry(station: Station, external_id: str, sha256: str) -> Inspection | None:
    existing = Inspection.objects.filter(station=station, external_id=external_id).first()
    if existing is not None and existing.image_sha256 != sha256:
        raise ExternalIdConflict(
            f"external_id {external_id!r} was already used by this station for a different image",
            field="external_id",
        )
    return existing


def receive_inspection(
    *, station: Station, external_id: str, image: ValidatedImage, metadata: dict, on_created=None
) -> tuple[Inspection, bool]:
    """Store the image and create the inspection; return (inspection, created).

    Safe to repeat: the same external_id with the same image returns the existing inspection
    (created=False) and does nothing else. With a different image it raises ExternalIdConflict
    and changes nothing. `on_created(inspection)` runs after the commit of a new inspection.
    A human_only item is routed to review in the same transaction: no model is asked.
    """
    existing = _existing_for_retry(station, external_id, image.sha256)
    if existing is not None:
        return existing, False
    line = station.line
    # who answers (the active model or a rollout's challenger) is chosen once, here; the
    # rollout's fields come last, so a canary item is audited at the rollout's own rate
    policy = {**routing_policy_snapshot(line), **rollouts.assignment(line, station, external_id)}
    name = storage.store_image(image.data, sha256=image.sha256, extension=image.extension)
    try:
        with transaction.atomic():
            inspection = Inspection.objects.create(
                station=station,
                line=line,
                external_id=external_id,
                metadata=metadata,
                image=name,
                image_sha256=image.sha256,
                image_format=image.format,
                width=image.width,
                height=image.height,
                received_at=timezone.now(),
                **policy,
            )
            if not routing.level_runs_model(inspection.automation_level):
                decisions.record_route(
                    inspection, routing.route_without_model(decisions.routing_policy_of(inspection))
                )
                # the route wrote the row; the caller must not wait for a model here
                inspection.status = InspectionStatus.IN_REVIEW
            elif on_created is not None:
                transaction.on_commit(lambda: on_created(inspection))
    except IntegrityError:
        # A concurrent retry of the same item won the insert; answer as the retry it is.
        _forget_image_if_unused(name)
        existing = _existing_for_retry(station, external_id, image.sha256)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        _forget_image_if_unused(name)
        raise
    return inspection, True


def _forget_image_if_unused(name: str) -> None:
    if not Inspection.objects.filter(image=name).exists():
        storage.delete_image(name)


# Predictions --------------------------------------------------------------------------------


def predict_and_route(*, inspection_id: int) -> Inspection | None:
    """Run the line's active model on the item, record the prediction, route the item.

    Idempotent: a redelivered or duplicated call reuses the recorded prediction and routes
    nothing twice. A result that comes after the latency budget is recorded (is_late) and the
    fail-safe applies instead. No transaction is held during inference. Returns the item
    (with its rollout) when the model's answer routed it, else None.
    """
    inspection = (
        Inspection.objects.select_related("line__active_model", "serving_model", "rollout")
        .filter(pk=inspection_id)
        .first()
    )
    if inspection is None:
        logger.error("inspection %s does not exist; nothing to predict", inspection_id)
        return
    if not routing.level_runs_model(inspection.automation_level):
        return
    # a challenger chosen when the item arrived (inspection.rollouts) answers it even if the
    # rollout moved on meanwhile; otherwise the line's active model does
    model_version = inspection.serving_model or inspection.line.active_model
    if model_version is None:
        decisions.apply_fail_safe(inspection=inspection, reason=FailSafeReason.NO_MODEL)
        return
    prediction = Prediction.objects.filter(
        inspection=inspection, model_version=model_version, role=PredictionRole.PRIMARY
    ).first()
    if prediction is None:
        try:
            output, latency_ms, stats = inference.predict_image_with_statistics(
                model_version, storage.image_path(inspection.image.name)
            )
        except inference.ModelUnavailable:
            logger.exception("inspection %s: model %s failed", inspection_id, model_version)
            decisions.apply_fail_safe(inspection=inspection, reason=FailSafeReason.MODEL_ERROR)
            return
        prediction = record_prediction(
            inspection=inspection,
            model_version=model_version,
            output=output,
            latency_ms=latency_ms,
            is_late=timezone.now() > decisions.budget_deadline(inspection),
            stats=stats,
        )
    if prediction.is_late:
        decisions.apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
        return
    route = routing.route_with_model(
        decisions.routing_policy_of(inspection),
        prediction.defect_probability,
        audit_key=f"{inspection.station_id}:{inspection.external_id}",
    )
    decisions.record_route(inspection, route, model_version=model_version)
    return inspection
