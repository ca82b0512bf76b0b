"""Business operations of the inspection service: lines, stations, receiving and routing items."""

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection import routing, storage
from inspection.errors import ExternalIdConflict, InvalidInput
from inspection.images import ValidatedImage
from inspection.models import (
    AutomationLevel,
    DecidedBy,
    Decision,
    FailSafeAction,
    FailSafeReason,
    Inspection,
    InspectionStatus,
    Line,
    LineChange,
    Prediction,
    PredictionRole,
    ReviewItem,
    Station,
)
from ml.models import ModelVersion

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "lps_"


# Lines and stations -----------------------------------------------------------------------


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
    from inspection.models import DEFAULT_DEFECT_CLASSES

    validate_level(level)
    validate_thresholds(accept_threshold, reject_threshold)
    if fail_safe_action not in FailSafeAction.values:
        raise InvalidInput(f"fail-safe action must be one of {', '.join(FailSafeAction.values)}")
    if Line.objects.filter(name=name).exists():
        raise InvalidInput(f"a line named {name!r} already exists")
    return Line.objects.create(
        name=name,
        automation_level=level,
        accept_threshold=accept_threshold,
        reject_threshold=reject_threshold,
        latency_budget_ms=latency_budget_ms,
        fail_safe_action=fail_safe_action,
        audit_fraction=audit_fraction,
        defect_classes=list(defect_classes or DEFAULT_DEFECT_CLASSES),
    )


def _log_change(line: Line, field: str, old: Any, new: Any, changed_by: str, reason: str) -> None:
    LineChange.objects.create(
        line=line,
        field=field,
        old_value="" if old is None else str(old),
        new_value="" if new is None else str(new),
        changed_by=changed_by,
        reason=reason,
    )


@transaction.atomic
def set_line_level(*, line: Line, level: str, changed_by: str, reason: str = "") -> Line:
    """Change the automation level; it applies to items received from now on. Logged."""
    validate_level(level)
    line = Line.objects.select_for_update().get(pk=line.pk)
    if line.automation_level != level:
        _log_change(line, "automation_level", line.automation_level, level, changed_by, reason)
        line.automation_level = level
        line.save(update_fields=["automation_level", "updated_at"])
    return line


@transaction.atomic
def set_line_thresholds(
    *,
    line: Line,
    accept_threshold: float,
    reject_threshold: float,
    changed_by: str,
    reason: str = "",
) -> Line:
    validate_thresholds(accept_threshold, reject_threshold)
    line = Line.objects.select_for_update().get(pk=line.pk)
    for field, value in (
        ("accept_threshold", accept_threshold),
        ("reject_threshold", reject_threshold),
    ):
        if getattr(line, field) != value:
            _log_change(line, field, getattr(line, field), value, changed_by, reason)
            setattr(line, field, value)
    line.save(update_fields=["accept_threshold", "reject_threshold", "updated_at"])
    return line


@transaction.atomic
def activate_model(
    *, line: Line, model_version: ModelVersion, changed_by: str, reason: str = ""
) -> Line:
    """Make `model_version` the line's active model for the next inspection (also a rollback)."""
    line = Line.objects.select_for_update().get(pk=line.pk)
    if line.active_model_id != model_version.pk:
        old = line.active_model.name if line.active_model else None
        _log_change(line, "active_model", old, model_version.name, changed_by, reason)
        line.active_model = model_version
        line.save(update_fields=["active_model", "updated_at"])
    return line


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_station(*, line: Line, name: str) -> tuple[Station, str]:
    """Create a station and return it with its token. The token is not stored, only its hash."""
    if Station.objects.filter(line=line, name=name).exists():
        raise InvalidInput(f"line {line.name!r} already has a station named {name!r}")
    token = _new_token()
    station = Station.objects.create(
        line=line, name=name, token_hash=hash_token(token), token_prefix=token[:10]
    )
    return station, token


def rotate_station_token(*, station: Station) -> str:
    """Issue a new token for the station; the old one stops working at once."""
    token = _new_token()
    station.token_hash, station.token_prefix = hash_token(token), token[:10]
    station.save(update_fields=["token_hash", "token_prefix"])
    return token


def station_for_token(token: str) -> Station | None:
    return Station.objects.select_related("line").filter(token_hash=hash_token(token)).first()


# Receiving --------------------------------------------------------------------------------


def policy_of(inspection: Inspection) -> routing.Policy:
    return routing.Policy(
        level=inspection.automation_level,
        accept_threshold=inspection.accept_threshold,
        reject_threshold=inspection.reject_threshold,
        fail_safe_action=inspection.fail_safe_action,
        audit_fraction=inspection.audit_fraction,
    )


def policy_snapshot(line: Line) -> dict:
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
    name = storage.store_image(image.data, sha256=image.sha256, extension=image.extension)
    line = station.line
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
                **policy_snapshot(line),
            )
            if not routing.level_runs_model(inspection.automation_level):
                _apply_route(inspection, routing.route_without_model(policy_of(inspection)))
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


# Routing ----------------------------------------------------------------------------------


@transaction.atomic
def _apply_route(
    inspection: Inspection,
    route: routing.Route,
    *,
    model_version: ModelVersion | None = None,
    decided_by: str = DecidedBy.MODEL,
    fail_safe_reason: str = FailSafeReason.NONE,
) -> bool:
    """Route a received item exactly once; return False when another path routed it first.

    The conditional UPDATE is the claim (only one worker, retry or fail-safe wins), and the
    one-to-one Decision is the database's guarantee of a single final decision.
    """
    now = timezone.now()
    status = InspectionStatus.DECIDED if route.outcome else InspectionStatus.IN_REVIEW
    won = Inspection.objects.filter(pk=inspection.pk, status=InspectionStatus.RECEIVED).update(
        status=status, model_version=model_version, fail_safe_reason=fail_safe_reason, routed_at=now
    )
    if won != 1:
        return False
    if route.outcome:
        Decision.objects.create(
            inspection_id=inspection.pk,
            outcome=route.outcome,
            decided_by=decided_by,
            model_version=model_version if decided_by == DecidedBy.MODEL else None,
            decided_at=now,
        )
    if route.review_reason:
        ReviewItem.objects.create(
            inspection_id=inspection.pk, reason=route.review_reason, shows_model=route.shows_model
        )
    return True


def apply_fail_safe(*, inspection: Inspection, reason: str) -> bool:
    """Apply the line's fail-safe (review, or reject) unless the item was routed already."""
    route = routing.route_fail_safe(policy_of(inspection))
    won = _apply_route(inspection, route, decided_by=DecidedBy.FAIL_SAFE, fail_safe_reason=reason)
    if won:
        logger.warning("inspection %s: fail-safe applied (%s)", inspection.pk, reason)
    return won


def budget_deadline(inspection: Inspection):
    return inspection.received_at + timedelta(milliseconds=inspection.latency_budget_ms)


# past its deadline by this much, an unrouted item has no request left waiting for it
OVERDUE_GRACE = timedelta(seconds=30)


def route_overdue_inspections(*, now=None) -> int:
    """Give the fail-safe to items still unrouted well past their budget; return how many.

    The POST that stored an item routes it by its deadline; if that process died between
    storing the image and sending the task (or while waiting), nothing else would, and the
    item would sit unseen. Its model answer, if one comes, is still recorded as late.
    """
    now = now or timezone.now()
    routed = 0
    # received_at bounds the scan; each item's own budget decides
    stale = Inspection.objects.filter(
        status=InspectionStatus.RECEIVED, received_at__lt=now - OVERDUE_GRACE
    )
    for inspection in stale.order_by("pk").iterator():
        if budget_deadline(inspection) + OVERDUE_GRACE < now:
            routed += apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
    return routed


def _record_prediction(
    *, inspection: Inspection, model_version: ModelVersion, output, latency_ms: float, is_late: bool
) -> Prediction:
    try:
        with transaction.atomic():
            return Prediction.objects.create(
                inspection=inspection,
                model_version=model_version,
                role=PredictionRole.PRIMARY,
                defect_probability=output.defect_probability,
                regions=[region.to_dict() for region in output.regions],
                latency_ms=latency_ms,
                is_late=is_late,
            )
    except IntegrityError:
        # A duplicated delivery of the same task recorded it first.
        return Prediction.objects.get(
            inspection=inspection, model_version=model_version, role=PredictionRole.PRIMARY
        )


def predict_and_route(*, inspection_id: int) -> None:
    """Run the line's active model on the item, record the prediction, route the item.

    Idempotent: a redelivered or duplicated call reuses the recorded prediction and routes
    nothing twice. A result that comes after the latency budget is recorded (is_late) and the
    fail-safe applies instead. No transaction is held during inference.
    """
    from ml import inference

    inspection = (
        Inspection.objects.select_related("line__active_model").filter(pk=inspection_id).first()
    )
    if inspection is None:
        logger.error("inspection %s does not exist; nothing to predict", inspection_id)
        return
    if not routing.level_runs_model(inspection.automation_level):
        return
    model_version = inspection.line.active_model
    if model_version is None:
        apply_fail_safe(inspection=inspection, reason=FailSafeReason.NO_MODEL)
        return
    prediction = Prediction.objects.filter(
        inspection=inspection, model_version=model_version, role=PredictionRole.PRIMARY
    ).first()
    if prediction is None:
        try:
            output, latency_ms = inference.predict_image(
                model_version, storage.image_path(inspection.image.name)
            )
        except inference.ModelUnavailable:
            logger.exception("inspection %s: model %s failed", inspection_id, model_version)
            apply_fail_safe(inspection=inspection, reason=FailSafeReason.MODEL_ERROR)
            return
        is_late = timezone.now() > budget_deadline(inspection)
        prediction = _record_prediction(
            inspection=inspection,
            model_version=model_version,
            output=output,
            latency_ms=latency_ms,
            is_late=is_late,
        )
    if prediction.is_late:
        apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
        return
    route = routing.route_with_model(
        policy_of(inspection),
        prediction.defect_probability,
        audit_key=f"{inspection.station_id}:{inspection.external_id}",
    )
    _apply_route(inspection, route, model_version=model_version)


def submit_inspection(
    *, station: Station, external_id: str, image: ValidatedImage, metadata: dict
) -> tuple[Inspection, bool]:
    """The station's POST: receive, have a worker predict, wait up to the line's budget.

    Returns (inspection, created) with the inspection routed: decided by the model, sent to
    review, or given the fail-safe when the budget ran out. A retry returns the first
    inspection and starts nothing.
    """
    from inspection import tasks

    inspection, created = receive_inspection(
        station=station,
        external_id=external_id,
        image=image,
        metadata=metadata,
        on_created=lambda item: tasks.enqueue_prediction(item.pk),
    )
    # A retry that arrives while the first request still waits, waits out the same budget;
    # either way no item stays unrouted past its deadline.
    if inspection.status == InspectionStatus.RECEIVED:
        remaining = (budget_deadline(inspection) - timezone.now()).total_seconds()
        tasks.wait_for_prediction(inspection.pk, timeout_s=max(remaining, 0.0))
        inspection.refresh_from_db(fields=["status"])
        if inspection.status == InspectionStatus.RECEIVED:
            apply_fail_safe(inspection=inspection, reason=FailSafeReason.BUDGET_MISSED)
    return inspection_with_answer(inspection.pk), created


def inspection_with_answer(inspection_id: int) -> Inspection:
    return (
        Inspection.objects.select_related("decision", "model_version", "line", "review_item")
        .prefetch_related("predictions__model_version")
        .get(pk=inspection_id)
    )
