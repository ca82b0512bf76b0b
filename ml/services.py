"""Training and registering model versions (the Django side of ml.engine)."""

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import transaction

from ml.models import ModelVersion


def describe_metrics(metrics: dict) -> str:
    """One line of the held-out figures a person judges a model by."""

    def figure(key: str, digits: int = 3) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    return (
        f"held-out AUROC {figure('auroc', 4)}, box hit rate (IoU >= 0.3) "
        f"{figure('box_hit_rate')}, precision {figure('precision')}, recall {figure('recall')}"
    )


def next_version_name() -> str:
    return f"v{ModelVersion.objects.count() + 1}"


def train_and_register_model(
    *,
    data_dir: Path,
    name: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    log: Callable[[str], None] = lambda line: None,
) -> ModelVersion:
    """Train on a folder written by generate_images and register the artifact as a version.

    The artifact is stored under LOUPE_MODEL_DIR by its content hash, so registering the same
    bytes twice is refused by the unique hash rather than stored twice.
    """
    import torch

    from ml.engine.train import TrainConfig, train_model

    torch.set_num_threads(os.cpu_count() or 1)
    model_dir = Path(settings.LOUPE_MODEL_DIR)
    model_dir.mkdir(parents=True, exist_ok=True)
    scratch = model_dir / f".training-{uuid.uuid4().hex}.pt"
    config = TrainConfig(seed=seed) if epochs is None else TrainConfig(seed=seed, epochs=epochs)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        result = train_model(Path(data_dir), scratch, config=config, device=device, log=log)
        final = model_dir / f"{result.sha256}.pt"
        os.replace(scratch, final)
    finally:
        scratch.unlink(missing_ok=True)
    return register_model_version(
        artifact=final,
        name=name,
        metrics=result.metrics,
        hyperparameters=result.hyperparameters,
        train_seconds=result.train_seconds,
        training_data=str(data_dir),
    )


@transaction.atomic
def register_model_version(
    *,
    artifact: Path,
    name: str | None = None,
    metrics: dict | None = None,
    hyperparameters: dict | None = None,
    train_seconds: float | None = None,
    training_data: str = "",
) -> ModelVersion:
    """Register an artifact that lies in LOUPE_MODEL_DIR; it must load, or nothing is stored."""
    from ml.engine.artifact import file_sha256, load_artifact

    sha256 = file_sha256(artifact)
    model = load_artifact(artifact, expected_sha256=sha256)
    return ModelVersion.objects.create(
        name=name or next_version_name(),
        artifact_path=str(Path(artifact).relative_to(settings.LOUPE_MODEL_DIR)),
        artifact_sha256=sha256,
        architecture=model.architecture,
        classes=list(model.classes),
        hyperparameters=hyperparameters if hyperparameters is not None else model.hyperparameters,
        metrics=metrics if metrics is not None else model.metrics,
        train_seconds=train_seconds,
        training_data=training_data,
    )
