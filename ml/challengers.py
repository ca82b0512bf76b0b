"""The registry's side of a rollout: which versions may challenge a line's active model, and a
challenger's promotion. Which model answers an item, and the rollout's steps, are
inspection.rollouts'; a challenger becomes active only through promote_model_version."""

from django.db import transaction

from inspection import rollouts
from inspection.errors import RolloutConflict
from inspection.models import Line, Rollout, RolloutState
from ml.errors import NotACandidate
from ml.models import ModelStatus, ModelVersion
from ml.services import promote_model_version


def start_challenger(
    *, model_version: ModelVersion, mode: str, changed_by: str, share: float = 0.0, **options
) -> Rollout:
    """Put a candidate beside its line's active model (inspection.rollouts.start_rollout says
    what may fail besides): only a candidate trained for a line challenges that line."""
    version = ModelVersion.objects.get(pk=model_version.pk)
    if version.line_id is None:
        raise NotACandidate(f"{version.name} was trained for no line")
    if version.status != ModelStatus.CANDIDATE:
        raise NotACandidate(f"{version.name} is {version.status}, not a candidate")
    return rollouts.start_rollout(
        line=Line.objects.get(pk=version.line_id),
        challenger=version,
        mode=mode,
        changed_by=changed_by,
        share=share,
        **options,
    )


@transaction.atomic
def promote_challenger(*, rollout: Rollout, changed_by: str, reason: str = "") -> Rollout:
    """The challenger becomes the line's active model for the next item, and the rollout ends
    as promoted; one transaction, so a failure leaves both as they were."""
    rollout = (
        Rollout.objects.select_for_update(of=("self",))
        .select_related("line__active_model", "challenger")
        .get(pk=rollout.pk)
    )
    if rollout.state != RolloutState.RUNNING:
        # a rolled-back challenger is not promoted by a click made before the rollback
        raise RolloutConflict(f"the rollout is {rollout.state}, not running")
    promote_model_version(
        model_version=rollout.challenger,
        changed_by=changed_by,
        expected_active=rollout.line.active_model,
        reason=reason or f"challenger {rollout.challenger.name} promoted from its rollout",
    )
    return rollouts.end_rollout(
        rollout=rollout, state=RolloutState.PROMOTED, changed_by=changed_by, reason=reason
    )
