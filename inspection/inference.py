"""The Django side of inference: one loaded copy of a model version per process.

A model version is ml's row; this module only reads its artifact (path and hash) and serves
it, so the inspection flow never imports the registry. This is the only module to change if
inference moves to another server. torch is imported
inside the functions, so a web process that renders pages never loads it.
"""

import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path

from django.conf import settings

from inspection.models import AutomationLevel, Line, Rollout, RolloutState
from loupe.common import metrics

logger = logging.getLogger(__name__)

# at least this many versions stay loaded; warm-up raises it to every version served (each
# line's active model and its rollout's challenger), so none is evicted and loaded again
_CACHE_SIZE = 4
_cache_size = _CACHE_SIZE
_cache: "OrderedDict[int, object]" = OrderedDict()
_lock = threading.Lock()


class ModelUnavailable(Exception):
    """The version's artifact is missing, tampered with, or fails when run."""


def _configure_process() -> None:
    """Give each process its share of the cores, so worker processes do not fight over them."""
    import torch

    torch.set_num_threads(settings.LOUPE_TORCH_THREADS)


def loaded_model(model_version):
    """The version's model, loaded once per process; a newly activated version is loaded on
    first use, so workers switch versions without a restart."""
    with _lock:
        model = _cache.get(model_version.pk)
        if model is not None:
            _cache.move_to_end(model_version.pk)
            return model
        from ml.engine.artifact import ArtifactError, load_artifact

        if not _cache:
            _configure_process()

        try:
            model = load_artifact(
                model_version.artifact_file,
                device=settings.LOUPE_INFERENCE_DEVICE,
                expected_sha256=model_version.artifact_sha256,
            )
        except ArtifactError as exc:
            raise ModelUnavailable(f"model {model_version.name}: {exc}") from exc
        _cache[model_version.pk] = model
        while len(_cache) > _cache_size:
            _cache.popitem(last=False)
        return model


def predict_image(model_version, path: Path):
    """Decode the stored image once and run the model; return (ModelOutput, latency in ms).

    OSError reading the image propagates (the task retries it); a failure of the model itself
    is ModelUnavailable.
    """
    output, latency_ms, _ = predict_image_with_statistics(model_version, path)
    return output, latency_ms


def predict_image_with_statistics(model_version, path: Path):
    """predict_image plus the image's drift record (ml.engine.drift.predict_with_statistics:
    statistics of the model's input, its projected embedding, its schema and what of it the
    model never saw), from the same resize and pass: (ModelOutput, latency in ms, dict)."""
    from PIL import Image

    from ml.engine.drift import predict_with_statistics

    model = loaded_model(model_version)
    started = time.perf_counter()
    with Image.open(path) as image:
        image.load()
        try:
            output, record = predict_with_statistics(model, [image])[0]
        except Exception as exc:
            raise ModelUnavailable(f"model {model_version.name} failed: {exc}") from exc
    seconds = time.perf_counter() - started
    metrics.record_inference(
        model_version=model_version.name,
        seconds=seconds,
        probability=output.defect_probability,
        region_count=len(output.regions),
        threshold=getattr(model, "image_threshold", 0.5),
    )
    return output, seconds * 1000.0, record


def forget_loaded_models() -> None:
    with _lock:
        _cache.clear()


def warm_up_active_models(*, only_new: bool = False) -> list[str]:
    """Load the versions the lines serve (active models and running rollouts' challengers) and
    run each once on a blank image; return their names. With only_new, only those this
    process does not hold yet (inspection.serving_news calls it on every change). Importing
    torch and loading a model takes seconds, more than a line's budget, so a process that does
    it on its first item sends that item to the fail-safe. A version that cannot be loaded is
    logged and skipped: its items get the fail-safe as before."""
    from PIL import Image

    # newest first; a human-only line never asks its model
    asking = [level for level in AutomationLevel.values if level != AutomationLevel.HUMAN_ONLY]
    serving = (
        Line.objects.filter(automation_level__in=asking, active_model__isnull=False)
        .select_related("active_model")
        .order_by("-active_model_id")
    )
    versions = {line.active_model_id: line.active_model for line in serving}
    # a running rollout's challenger answers (canary, blue-green) or predicts (mirror) too
    challengers = Rollout.objects.filter(
        state=RolloutState.RUNNING, line__automation_level__in=asking
    ).select_related("challenger")
    versions.update({rollout.challenger_id: rollout.challenger for rollout in challengers})
    global _cache_size
    _cache_size = max(_CACHE_SIZE, len(versions))
    warmed = []
    for version in versions.values():
        if only_new and version.pk in _cache:
            continue
        started = time.perf_counter()
        try:
            model = loaded_model(version)
            size = model.preprocessing.input_size
            model.predict([Image.new("RGB", (size, size))])
        except Exception as exc:  # noqa: BLE001 - one bad version must not stop the others
            logger.warning("warm-up skipped %s: %s", version.name, exc)
            continue
        logger.info(
            "warmed up model %s in %.0f ms", version.name, 1000 * (time.perf_counter() - started)
        )
        warmed.append(version.name)
    return warmed
