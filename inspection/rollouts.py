"""Challenger rollouts: which model answers a new item, and every change to that.

A line has its active model and at most one running Rollout with a challenger beside it:
- mirror: the challenger predicts on items after the active model answered and never decides;
- canary: the challenger decides `share` of new items (steps such as 0.05, 0.25, 0.5, 1.0);
- blue-green: both models warm, `share` 0 or 1; one switch moves every new item.
The choice is made once, when an item arrives, and stored on it (Inspection.serving_model,
rollout, rollout_share), so a redelivered task asks the same model. This module is the only
writer of Rollout; each change also goes to the line's audit log. Promotion, the challenger
becoming the active model, is ml.services' (it keeps the registry's statuses in step).
"""

import hashlib

from django.db import IntegrityError, transaction
from django.utils import timezone

from inspection.audit_log import record_line_change
from inspection.errors import LineRuleBroken, RolloutConflict
from inspection.models import Line, Rollout, RolloutMode, RolloutState, Station
from loupe.common.errors import InvalidInput

CANARY_STEPS = (0.05, 0.25, 0.5, 1.0)
DEFAULT_CHALLENGER_AUDIT = 0.2


def challenger_draw(rollout_id: int, station_id: int, external_id: str) -> float:
    """Where an item falls in [0, 1) for a rollout; the challenger decides it when the draw is
    under the rollout's share. Salted with the rollout's id, so it is independent of the audit
    draw (routing.is_audit_sample) and of earlier rollouts, and a raised step keeps every item
    the lower step gave the challenger."""
    key = f"rollout:{rollout_id}:{station_id}:{external_id}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") / 2**64


def running_rollout(line: Line) -> Rollout | None:
    # no join: the station path, which asks this for every item, needs the challenger's id only
    return Rollout.objects.filter(line=line, state=RolloutState.RUNNING).first()


def assignment(line: Line, station: Station, external_id: str) -> dict:
    """The fields a new item stores about who answers it: the running rollout and its step,
    and the challenger where the share draws the item (then audited at the rollout's own rate,
    so its decisions are checked more often than the incumbent's). Without a challenger, the
    line's active model at prediction time answers, as it always has."""
    rollout = running_rollout(line)
    fields = {"serving_model_id": None, "rollout": rollout, "rollout_share": None}
    if rollout is None:
        return fields
    fields["rollout_share"] = rollout.share
    if rollout.share > 0 and challenger_draw(rollout.pk, station.pk, external_id) < rollout.share:
        fields["serving_model_id"] = rollout.challenger_id
        if rollout.mode == RolloutMode.CANARY:
            fields["audit_fraction"] = rollout.audit_fraction
    return fields


def _check_share(mode: str, share: float) -> None:
    if not 0.0 <= share <= 1.0:
        raise InvalidInput("share must be between 0 and 1", field="share")
    if mode == RolloutMode.MIRROR and share != 0:
        raise InvalidInput("a mirror challenger decides no item: its share is 0", field="share")
    if mode == RolloutMode.BLUE_GREEN and share not in (0.0, 1.0):
        raise InvalidInput("blue-green sends every item to one model: 0 or 1", field="share")


def _log(rollout: Rollout, old, new, changed_by: str, reason: str) -> None:
    record_line_change(rollout.line, "rollout", old, new, changed_by, reason)


def _describe(rollout: Rollout) -> str:
    return f"{rollout.mode} {rollout.challenger.name} {rollout.share:g} ({rollout.state})"


@transaction.atomic
def start_rollout(
    *,
    line: Line,
    challenger,
    mode: str,
    changed_by: str,
    share: float = 0.0,
    audit_fraction: float = DEFAULT_CHALLENGER_AUDIT,
    reason: str = "",
) -> Rollout:
    """Put `challenger` beside the line's active model. Raises RolloutConflict when one is
    running already, LineRuleBroken without an active model to compare with, InvalidInput on
    a bad mode, share or audit rate; nothing is stored then."""
    if mode not in RolloutMode.values:
        raise InvalidInput(f"unknown rollout mode {mode!r}", field="mode")
    _check_share(mode, share)
    if not 0.0 <= audit_fraction <= 1.0:
        raise InvalidInput("audit_fraction must be between 0 and 1", field="audit_fraction")
    line = Line.objects.select_for_update().get(pk=line.pk)
    if line.active_model_id is None:
        raise LineRuleBroken("the line has no active model to compare a challenger with")
    if line.active_model_id == challenger.pk:
        raise LineRuleBroken("the challenger is the line's active model already")
    try:
        with transaction.atomic():
            rollout = Rollout.objects.create(
                line=line,
                challenger=challenger,
                mode=mode,
                share=share,
                audit_fraction=audit_fraction,
                started_by=changed_by,
            )
    except IntegrityError:
        raise RolloutConflict(f"line {line.name} has a running rollout already") from None
    _log(rollout, None, _describe(rollout), changed_by, reason)
    return rollout


def _locked_running(rollout: Rollout) -> Rollout:
    rollout = (
        Rollout.objects.select_for_update().select_related("line", "challenger").get(pk=rollout.pk)
    )
    if rollout.state != RolloutState.RUNNING:
        raise RolloutConflict(f"the rollout is {rollout.state}, not running")
    return rollout


@transaction.atomic
def set_rollout_share(*, rollout: Rollout, share: float, changed_by: str, reason="") -> Rollout:
    """Move a canary to another step, or switch a blue-green rollout (1: the challenger takes
    every new item, 0: the active model does). Applies to the next item received."""
    rollout = _locked_running(rollout)
    _check_share(rollout.mode, share)
    if rollout.share != share:
        old = _describe(rollout)
        rollout.share = share
        rollout.save(update_fields=["share"])
        _log(rollout, old, _describe(rollout), changed_by, reason)
    return rollout


@transaction.atomic
def begin_canary(*, rollout: Rollout, changed_by: str, reason: str = "") -> Rollout:
    """A mirror challenger starts deciding: the same rollout (so the same draw) becomes a
    canary at the first step, for the next item received."""
    rollout = _locked_running(rollout)
    if rollout.mode != RolloutMode.MIRROR:
        raise RolloutConflict(f"the rollout is a {rollout.mode} already, not a mirror")
    old = _describe(rollout)
    rollout.mode, rollout.share = RolloutMode.CANARY, CANARY_STEPS[0]
    rollout.save(update_fields=["mode", "share"])
    _log(rollout, old, _describe(rollout), changed_by, reason)
    return rollout


def next_canary_step(share: float) -> float | None:
    """The step after `share`, or None at 1.0."""
    return next((step for step in CANARY_STEPS if step > share), None)


@transaction.atomic
def end_rollout(*, rollout: Rollout, state: str, changed_by: str, reason: str = "") -> Rollout:
    """End a running rollout: rolled back (its share goes to 0 at once), stopped, or promoted
    (only ml.services.promote_challenger says so, after making it the active model)."""
    if state not in (RolloutState.ROLLED_BACK, RolloutState.STOPPED, RolloutState.PROMOTED):
        raise InvalidInput(f"a rollout cannot end as {state!r}", field="state")
    rollout = _locked_running(rollout)
    old = _describe(rollout)
    if state != RolloutState.PROMOTED:
        rollout.share = 0.0
    rollout.state = state
    rollout.ended_at = timezone.now()
    rollout.ended_by = changed_by
    rollout.ended_reason = reason
    rollout.save(update_fields=["share", "state", "ended_at", "ended_by", "ended_reason"])
    _log(rollout, old, _describe(rollout), changed_by, reason)
    return rollout
