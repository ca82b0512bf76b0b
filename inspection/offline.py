"""Offline inspections: images that came from no camera (a batch prediction's), kept as items of
a line so people can label them, with what the model said about them as the proposal.

They live on the line's disabled batch station with status offline: never routed, never
decided, never in review, so the overdue job, the console's figures and the agreement evidence
leave them out. Their only row besides the inspection is the model's primary prediction, which
the label editor shows as the model's proposal and labeling compares a human label with.
"""

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from inspection import services
from inspection.models import Inspection, InspectionStatus, Line, Prediction, PredictionRole

CHUNK = 1000


@dataclass(frozen=True)
class OfflineItem:
    """An image already stored (inspection.storage) and the model's output for it."""

    external_id: str
    image_name: str
    sha256: str
    image_format: str
    width: int
    height: int
    defect_probability: float
    regions: list
    latency_ms: float = 0.0
    metadata: dict = field(default_factory=dict)


def record_offline_inspections(
    *, line: Line, items: list[OfflineItem], model_version
) -> list[Inspection]:
    """The offline inspections of the items, in their order, with the model version's primary
    prediction on each; created where missing.

    Safe to repeat and to race: an item whose external_id the line's batch station already
    has is that inspection (its first image and metadata stay), and a prediction the version
    already made on it is kept. Raises ValueError when one external_id names two images.
    """
    if not items:
        return []
    station = services.batch_station(line)
    ids = [item.external_id for item in items]
    if len(set(ids)) != len(ids):
        raise ValueError("each offline item needs its own external_id")
    policy = services.routing_policy_snapshot(line)
    now = timezone.now()
    with transaction.atomic():
        for start in range(0, len(items), CHUNK):
            # ignore_conflicts: an item another request (or an earlier batch) recorded stays
            Inspection.objects.bulk_create(
                [
                    Inspection(
                        station=station,
                        line=line,
                        external_id=item.external_id,
                        metadata=item.metadata,
                        image=item.image_name,
                        image_sha256=item.sha256,
                        image_format=item.image_format,
                        width=item.width,
                        height=item.height,
                        received_at=now,
                        status=InspectionStatus.OFFLINE,
                        model_version=model_version,
                        **policy,
                    )
                    for item in items[start : start + CHUNK]
                ],
                ignore_conflicts=True,
            )
        found = {}
        for start in range(0, len(ids), CHUNK):
            found.update(
                (inspection.external_id, inspection)
                for inspection in Inspection.objects.filter(
                    station=station, external_id__in=ids[start : start + CHUNK]
                )
            )
        inspections = [found[item.external_id] for item in items]
        for inspection, item in zip(inspections, items, strict=True):
            if inspection.image_sha256 != item.sha256:
                raise ValueError(f"{item.external_id} is already another image of line {line}")
        Prediction.objects.bulk_create(
            [
                Prediction(
                    inspection=inspection,
                    model_version=model_version,
                    role=PredictionRole.PRIMARY,
                    defect_probability=item.defect_probability,
                    regions=item.regions,
                    latency_ms=item.latency_ms,
                )
                for inspection, item in zip(inspections, items, strict=True)
            ],
            batch_size=CHUNK,
            ignore_conflicts=True,
        )
    return inspections
