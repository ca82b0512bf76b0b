"""Prediction rows: one per item, model and role, so a redelivered task finds its own."""

from django.db import IntegrityError, transaction

from inspection.models import Inspection, Prediction, PredictionRole


def record_prediction(
    *,
    inspection: Inspection,
    model_version,
    output,
    latency_ms: float,
    is_late: bool = False,
    stats: dict | None = None,
    role: str = PredictionRole.PRIMARY,
) -> Prediction:
    """Store a model's output (ml.engine ModelOutput) on the item; where a duplicated delivery
    of the same task stored it first, return that row instead."""
    try:
        with transaction.atomic():
            return Prediction.objects.create(
                inspection=inspection,
                model_version=model_version,
                role=role,
                defect_probability=output.defect_probability,
                regions=[region.to_dict() for region in output.regions],
                latency_ms=latency_ms,
                is_late=is_late,
                input_stats=stats or {},
            )
    except IntegrityError:
        return Prediction.objects.get(inspection=inspection, model_version=model_version, role=role)
