"""A mirror challenger's predictions: the rollout's second model run on items the active model
has answered, recorded beside its prediction (role challenger) and never routed, so the
station's answer neither waits for nor sees it. The report compares the two on the same items.
"""

import logging

from inspection import inference, storage
from inspection.models import (
    Inspection,
    Prediction,
    PredictionRole,
    RolloutMode,
    RolloutState,
)
from inspection.predictions import record_prediction

logger = logging.getLogger(__name__)


def wants_challenger_prediction(inspection: Inspection) -> bool:
    """Whether the item's rollout is a running mirror: read from the item predict_and_route
    loaded with its rollout, so deciding costs the station path no query."""
    rollout = inspection.rollout
    return (
        rollout is not None
        and rollout.mode == RolloutMode.MIRROR
        and rollout.state == RolloutState.RUNNING
    )


def record_challenger_prediction(*, inspection_id: int) -> Prediction | None:
    """Run the mirror challenger on the item and record its output; idempotent (a redelivered
    task finds the row). Returns None where the rollout ended meanwhile or the model failed:
    a challenger's failure is logged and counted, never the item's problem."""
    inspection = (
        Inspection.objects.select_related("rollout__challenger").filter(pk=inspection_id).first()
    )
    if inspection is None or not wants_challenger_prediction(inspection):
        return None
    challenger = inspection.rollout.challenger
    existing = Prediction.objects.filter(
        inspection=inspection, model_version=challenger, role=PredictionRole.CHALLENGER
    ).first()
    if existing is not None:
        return existing
    try:
        output, latency_ms, stats = inference.predict_image_with_statistics(
            challenger, storage.image_path(inspection.image.name)
        )
    except inference.ModelUnavailable:
        logger.exception("inspection %s: challenger %s failed", inspection_id, challenger)
        return None
    return record_prediction(
        inspection=inspection,
        model_version=challenger,
        output=output,
        latency_ms=latency_ms,
        stats=stats,
        role=PredictionRole.CHALLENGER,
    )
