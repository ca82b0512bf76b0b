"""What a batch prediction gives once it is done: its results (rows for CSV and JSON, the
status the pages poll) and its images sent to the line's labeling queue as offline items."""

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import transaction
from django.urls import reverse

from datasets.batch import CREATE_CHUNK, BatchNotFinished
from datasets.models import BatchImage, BatchPrediction, ExportImportState
from inspection import offline
from inspection.models import Line
from labeling import queue as labeling_queue
from labeling.services import MODEL_DEFECTIVE_PROBABILITY
from loupe.common.errors import InvalidInput

logger = logging.getLogger(__name__)

RESULT_FIELDS = (
    "name",
    "sha256",
    "width",
    "height",
    "defect_probability",
    "model_label",
    "region_count",
    "regions",
    "error",
)


# Results ----------------------------------------------------------------------------------


def model_label(image: BatchImage) -> str:
    """What the model says of the image, as labeling reads a prediction: defective when it
    drew a box or its probability reaches MODEL_DEFECTIVE_PROBABILITY."""
    if image.defect_probability is None:
        return ""
    defective = image.regions or image.defect_probability >= MODEL_DEFECTIVE_PROBABILITY
    return "defective" if defective else "ok"


def result_rows(batch: BatchPrediction) -> Iterator[dict]:
    """One dict per file of the batch (RESULT_FIELDS), in archive order, read in chunks."""
    for image in batch.images.order_by("position").iterator(chunk_size=CREATE_CHUNK):
        yield {
            "name": image.name,
            "sha256": image.sha256,
            "width": image.width,
            "height": image.height,
            "defect_probability": image.defect_probability,
            "model_label": model_label(image),
            "region_count": len(image.regions),
            "regions": image.regions,
            "error": image.error,
        }


def batch_payload(record: BatchPrediction) -> dict:
    """The status the page polls (and the command prints)."""
    finished = record.state == "done"
    return {
        "id": record.pk,
        "line": record.line.name,
        "model_version": record.model_version.name,
        "source_name": record.source_name,
        "state": record.state,
        "total": record.total,
        "done": record.done,
        "failed": record.failed_count,
        "sent_to_labeling": record.sent_count,
        "error": record.error,
        "created_at": record.created_at.isoformat(),
        "finished_at": record.finished_at.isoformat() if record.finished_at else None,
        "status_url": reverse("datasets:batch-status", args=[record.pk]),
        "results_csv_url": reverse("datasets:batch-csv", args=[record.pk]) if finished else None,
        "results_json_url": reverse("datasets:batch-json", args=[record.pk]) if finished else None,
    }


# Into the labeling queue --------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    """Which predicted images to send: a probability range, both ends included."""

    min_probability: float = 0.0
    max_probability: float = 1.0

    @classmethod
    def parse(cls, data: dict, *, line: Line) -> "Selection":
        """From a form or JSON: which = all | defective | range (with min_probability,
        max_probability). "defective" is the line's reject threshold and up. Raises
        InvalidInput."""
        which = data.get("which") or "all"
        if which == "all":
            return cls()
        if which == "defective":
            return cls(min_probability=line.reject_threshold)
        if which != "range":
            raise InvalidInput("which must be all, defective or range", field="which")
        bounds = []
        for key, default in (("min_probability", 0.0), ("max_probability", 1.0)):
            value = data.get(key)
            try:
                bounds.append(default if value in (None, "") else float(value))
            except (TypeError, ValueError):
                raise InvalidInput(f"{key} must be a number from 0 to 1", field=key) from None
        low, high = bounds
        if not (0.0 <= low <= high <= 1.0):
            raise InvalidInput(
                "the range needs 0 <= min_probability <= max_probability <= 1",
                field="min_probability",
            )
        return cls(min_probability=low, max_probability=high)


def _offline_item(batch: BatchPrediction, image: BatchImage) -> offline.OfflineItem:
    return offline.OfflineItem(
        # the content is the key: the same image from two batches is one item to label
        external_id=f"batch:{image.sha256}",
        image_name=image.image,
        sha256=image.sha256,
        image_format=image.image_format,
        width=image.width,
        height=image.height,
        defect_probability=image.defect_probability,
        regions=image.regions,
        latency_ms=image.latency_ms or 0.0,
        metadata={"batch": {"id": batch.pk, "source": batch.source_name, "file": image.name}},
    )


def send_to_labeling(*, batch: BatchPrediction, selection: Selection, user=None) -> dict:
    """Send the batch's predicted images in the selection to the line's labeling queue, as
    offline inspections with the model's boxes as the proposal; return {"selected",
    "queued"} (queued: entries the queue did not have yet).

    Raises BatchNotFinished unless the batch is done. Safe to repeat: an image sent before
    is the same inspection and queue entry. All or nothing.
    """
    if batch.state != ExportImportState.DONE:
        raise BatchNotFinished(f"the batch is {batch.state}; send its images once it is done")
    images = list(
        batch.images.filter(
            defect_probability__isnull=False,
            defect_probability__gte=selection.min_probability,
            defect_probability__lte=selection.max_probability,
        ).order_by("position")
    )
    first: dict[str, BatchImage] = {}
    for image in images:
        first.setdefault(image.sha256, image)
    with transaction.atomic():
        inspections = offline.record_offline_inspections(
            line=batch.line,
            items=[_offline_item(batch, image) for image in first.values()],
            model_version=batch.model_version,
        )
        by_sha = {inspection.image_sha256: inspection for inspection in inspections}
        for image in images:
            image.inspection = by_sha[image.sha256]
        BatchImage.objects.bulk_update(images, ["inspection"], batch_size=CREATE_CHUNK)
        queued = (
            labeling_queue.add_to_queue(
                inspections=inspections,
                kind="batch",
                details={"batch": batch.pk, "source": batch.source_name},
            )
            if inspections
            else 0
        )
        BatchPrediction.objects.filter(pk=batch.pk).update(
            sent_count=batch.images.filter(inspection__isnull=False).count()
        )
    logger.info("batch %s: %d images sent to labeling by %s", batch.pk, len(images), user or "cli")
    return {"selected": len(images), "queued": queued}


def batch_payload_counts(batch: BatchPrediction) -> dict:
    """How many of the batch's images the model called defective, for the page."""
    predicted = batch.images.filter(defect_probability__isnull=False)
    return {
        "predicted": predicted.count(),
        "defective": predicted.filter(defect_probability__gte=batch.line.reject_threshold).count(),
    }
