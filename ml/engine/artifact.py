"""One-file model artifacts: a state_dict plus plain metadata, loaded without unpickling objects."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import torch

from .inference import DefectModel, Preprocessing
from .model import build_model

__all__ = [
    "ArtifactError",
    "DefectModel",
    "Preprocessing",
    "file_sha256",
    "load_artifact",
    "save_artifact",
]

FORMAT = "loupe-defect-model"
FORMAT_VERSION = 1
_SCALARS = (str, int, float, bool, type(None))


class ArtifactError(Exception):
    """The artifact is missing, altered, or not something this engine wrote."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_artifact(
    path: Path,
    *,
    model: torch.nn.Module,
    preprocessing: Preprocessing,
    classes: tuple[str, ...],
    architecture: str,
    hyperparameters: dict,
    metrics: dict,
) -> str:
    """Write the artifact atomically and return the sha256 of the file written."""
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "classes": list(classes),
        "preprocessing": preprocessing.to_dict(),
        "hyperparameters": hyperparameters,
        "metrics": metrics,
        # on CPU so an artifact trained on a GPU loads anywhere
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    _check_plain(payload, "artifact")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        digest = file_sha256(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return digest


def load_artifact(
    path: Path, *, device: str = "cpu", expected_sha256: str | None = None
) -> DefectModel:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read model artifact {path}: {exc}") from exc
    # hash the very bytes that get loaded, so the file cannot change in between
    if expected_sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256.strip().lower():
            raise ArtifactError(
                f"{path} has sha256 {actual}, expected {expected_sha256}: refusing to load it"
            )
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a bad or hostile file
        raise ArtifactError(f"{path} is not a loadable model artifact: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ArtifactError(f"{path} is not a {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path} has unsupported format_version {payload.get('format_version')}"
        )
    try:
        classes = tuple(str(c) for c in payload["classes"])
        architecture = str(payload["architecture"])
        preprocessing = Preprocessing.from_dict(payload["preprocessing"])
        network = build_model(architecture, len(classes))
        network.load_state_dict(payload["state_dict"])
        metrics, hyperparameters = dict(payload["metrics"]), dict(payload["hyperparameters"])
        # chosen at training time for this model's map; older or foreign files get the default
        pixel_threshold = float(hyperparameters.get("pixel_threshold", 0.5))
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{path} has invalid contents: {exc}") from exc
    return DefectModel(
        network,
        classes=classes,
        architecture=architecture,
        preprocessing=preprocessing,
        metrics=metrics,
        hyperparameters=hyperparameters,
        device=device,
        pixel_threshold=pixel_threshold,
    )


def _check_plain(value: object, where: str) -> None:
    # only what torch.load(weights_only=True) reads back may go in
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{where}: key {key!r} is not a string")
            _check_plain(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not (type(value) in _SCALARS or isinstance(value, torch.Tensor)):
        # exact types: a numpy float passes isinstance(float) but pickles as a numpy object
        raise TypeError(f"{where}: {type(value).__name__} is not plain data")
