"""The model registry: registering versions with their lineage, promotion, discard, rollback,
and each line's retraining policy (the Django side of ml.engine)."""

import functools
import os
import platform
import subprocess
import uuid
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from inspection import services as inspection_services
from inspection.models import Line, LineChange
from loupe.common.errors import InvalidInput
from ml.errors import ActiveModelChanged, NotACandidate, NothingToRollBack
from ml.models import MlopsLevel, ModelStatus, ModelVersion, RetrainingPolicy


def describe_metrics(metrics: dict) -> str:
    """One line of the held-out figures a person judges a model by."""

    def figure(source: dict, key: str, digits: int = 3) -> str:
        value = source.get(key)
        return "n/a" if value is None else f"{value:.{digits}f}"

    if "reject" in metrics:  # figures at a line's thresholds (ml.engine.evaluate)
        at = metrics["reject"]
        return (
            f"test AUROC {figure(metrics, 'auroc', 4)}, box IoU {figure(metrics, 'box_iou')}; "
            f"at the reject threshold {at['threshold']:g}: precision {figure(at, 'precision')}, "
            f"recall {figure(at, 'recall')}, F1 {figure(at, 'f1')}"
        )
    return (
        f"held-out AUROC {figure(metrics, 'auroc', 4)}, box hit rate (IoU >= 0.3) "
        f"{figure(metrics, 'box_hit_rate')}, precision {figure(metrics, 'precision')}, "
        f"recall {figure(metrics, 'recall')}"
    )


def next_version_name() -> str:
    number = ModelVersion.objects.count() + 1
    while ModelVersion.objects.filter(name=f"v{number}").exists():
        number += 1
    return f"v{number}"


@functools.cache
def code_version() -> str:
    """The git commit this process runs ('-dirty' with uncommitted changes), or '' when the
    code is not a git checkout. Read once per process: later pulls do not change the code a
    running worker executes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=settings.BASE_DIR,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{commit}-dirty" if changes else commit


def environment() -> dict:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return ""

    return {
        "python": platform.python_version(),
        "torch": version("torch"),
        "torchvision": version("torchvision"),
        "numpy": version("numpy"),
        "platform": platform.platform(),
    }


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

    torch.set_num_threads(settings.LOUPE_TRAIN_THREADS)
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
    line=None,
    dataset_version=None,
    parent: ModelVersion | None = None,
    evaluation: dict | None = None,
) -> ModelVersion:
    """Register an artifact that lies in LOUPE_MODEL_DIR as a candidate; it must load, or
    nothing is stored. The code version and environment are those of this process."""
    from ml.engine.artifact import file_sha256, load_artifact

    sha256 = file_sha256(artifact)
    model = load_artifact(artifact, expected_sha256=sha256)
    return ModelVersion.objects.create(
        name=name or next_version_name(),
        status=ModelStatus.CANDIDATE,
        line=line,
        artifact_path=str(Path(artifact).relative_to(settings.LOUPE_MODEL_DIR)),
        artifact_sha256=sha256,
        architecture=model.architecture,
        classes=list(model.classes),
        hyperparameters=hyperparameters if hyperparameters is not None else model.hyperparameters,
        metrics=metrics if metrics is not None else model.metrics,
        evaluation=evaluation or {},
        train_seconds=train_seconds,
        training_data=training_data,
        dataset_version=dataset_version,
        parent=parent,
        code_version=code_version(),
        environment=environment(),
    )


# Promotion, discard, rollback ---------------------------------------------------------------


@transaction.atomic
def set_active_version(*, line, model_version: ModelVersion, changed_by: str, reason: str = ""):
    """Serve `model_version` on `line` from the next inspection on, and keep the registry's
    statuses in step: it becomes active, the version it replaces retired (unless another line
    still serves it). One transaction: a failure leaves both the line and the statuses as
    they were. The only way to activate a model: the line's half (the switch and its audit
    entry) is inspection.services.set_line_active_model. Returns the line."""
    previous_id = Line.objects.select_for_update().get(pk=line.pk).active_model_id
    line = inspection_services.set_line_active_model(
        line=line, model_version=model_version, changed_by=changed_by, reason=reason
    )
    # a version trained from a folder on the command line belongs to no line until it first
    # serves one; from then on the registry lists it with that line's versions
    ModelVersion.objects.filter(pk=model_version.pk, line__isnull=True).update(line=line)
    now = timezone.now()
    if previous_id != model_version.pk:
        ModelVersion.objects.filter(pk=model_version.pk).update(
            status=ModelStatus.ACTIVE, promoted_at=now, retired_at=None
        )
        if previous_id and not Line.objects.filter(active_model_id=previous_id).exists():
            ModelVersion.objects.filter(pk=previous_id).update(
                status=ModelStatus.RETIRED, retired_at=now
            )
    return line


@transaction.atomic
def promote_model_version(
    *,
    model_version: ModelVersion,
    changed_by: str,
    expected_active: ModelVersion | None,
    reason: str = "",
) -> ModelVersion:
    """Make a candidate its line's active model, effective for the next inspection.

    expected_active: the version the decision was made against (the gate's baseline, or what
    the supervisor's page showed); raises ActiveModelChanged if the line now serves another.
    Raises NotACandidate for a retired version or one trained for no line. Safe to repeat:
    promoting the version its line already serves changes nothing.
    """
    version = ModelVersion.objects.get(pk=model_version.pk)
    if version.line_id is None:
        raise NotACandidate(f"{version.name} was trained for no line: activate it on one")
    # the line first, then the version (rollback_line locks in the same order): a second
    # promotion or a rollback waits here and then checks against what the first one did
    line = Line.objects.select_for_update().get(pk=version.line_id)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if line.active_model_id == version.pk:
        return version
    if version.status != ModelStatus.CANDIDATE:
        raise NotACandidate(f"{version.name} is {version.status}, not a candidate")
    expected_id = expected_active.pk if expected_active else None
    if line.active_model_id != expected_id:
        raise ActiveModelChanged(
            f"{line.name} no longer serves {expected_active or 'no model'}: "
            "compare the candidate with the model it serves now"
        )
    set_active_version(
        line=line,
        model_version=version,
        changed_by=changed_by,
        reason=reason or f"promoted candidate {version.name}",
    )
    version.refresh_from_db()
    return version


@transaction.atomic
def discard_candidate(*, model_version: ModelVersion, changed_by: str, reason: str = ""):
    """Retire a candidate that will not be served; logged in its line's audit log. Raises
    NotACandidate for an active version; discarding a retired one again changes nothing."""
    version = ModelVersion.objects.select_for_update().get(pk=model_version.pk)
    if version.status == ModelStatus.RETIRED:
        return version
    if version.status != ModelStatus.CANDIDATE:
        raise NotACandidate(f"{version.name} is {version.status}, not a candidate")
    version.status = ModelStatus.RETIRED
    version.retired_at = timezone.now()
    version.save(update_fields=["status", "retired_at"])
    if version.line_id:
        inspection_services.log_line_event(
            line=version.line,
            field="candidate",
            old=version.name,
            new="discarded",
            changed_by=changed_by,
            reason=reason,
        )
    return version


def previous_active_version(line) -> ModelVersion | None:
    """The version the line served before its current one, from its audit log."""
    change = (
        LineChange.objects.filter(line=line, field="active_model").order_by("-changed_at", "-pk")
    ).first()
    if change is None or not change.old_value:
        return None
    return ModelVersion.objects.filter(name=change.old_value).first()


@transaction.atomic
def rollback_line(*, line, expected_active: ModelVersion, changed_by: str, reason: str = ""):
    """Serve the previous active version again, from the next inspection on. Returns it.

    expected_active: the version the supervisor saw serving; a second click (or a colleague's
    rollback in between) raises ActiveModelChanged instead of rolling back twice. Raises
    NothingToRollBack when the line has served no other version.
    """
    line = Line.objects.select_for_update().get(pk=line.pk)
    if line.active_model_id != expected_active.pk:
        raise ActiveModelChanged(
            f"{line.name} serves {line.active_model or 'no model'} now, not {expected_active}"
        )
    previous = previous_active_version(line)
    if previous is None:
        raise NothingToRollBack(f"{line.name} has served no model before {expected_active}")
    set_active_version(
        line=line,
        model_version=previous,
        changed_by=changed_by,
        reason=reason or f"rollback from {expected_active.name}",
    )
    return previous


# Retraining policy --------------------------------------------------------------------------

RETRAINING_POLICY_FIELDS = (
    "mlops_level",
    "retrain_every_corrections",
    "gate_margin",
    "max_class_recall_drop",
    "memory_budget_mb",
    "run_config",
)


def retraining_policy_for(line) -> RetrainingPolicy:
    """The line's retraining policy: the defaults, unsaved, until someone sets one (so a page
    that shows it writes nothing)."""
    return RetrainingPolicy.objects.filter(line=line).first() or RetrainingPolicy(line=line)


@transaction.atomic
def set_retraining_policy(*, line, changed_by: str, reason: str = "", **values) -> RetrainingPolicy:
    """Change a line's MLOps level or gate rules; each changed field goes to the audit log.
    Raises InvalidInput on an unknown field or a value out of range, changing nothing."""
    unknown = set(values) - set(RETRAINING_POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"unknown policy field {', '.join(sorted(unknown))}")
    if "mlops_level" in values and values["mlops_level"] not in MlopsLevel.values:
        raise InvalidInput(f"MLOps level must be one of {', '.join(MlopsLevel.values)}")
    if values.get("retrain_every_corrections", 1) < 1:
        raise InvalidInput("retrain_every_corrections must be at least 1")
    for key in ("gate_margin", "max_class_recall_drop"):
        if key in values and not 0.0 <= values[key] <= 1.0:
            raise InvalidInput(f"{key} must be within 0..1")
    if "memory_budget_mb" in values and not (
        isinstance(values["memory_budget_mb"], int) and values["memory_budget_mb"] >= 1
    ):
        raise InvalidInput("memory_budget_mb must be a whole number of MB, at least 1")
    if "run_config" in values and not isinstance(values["run_config"], dict):
        raise InvalidInput("run_config must be an object of run settings")
    RetrainingPolicy.objects.get_or_create(line=line)
    policy = RetrainingPolicy.objects.select_for_update().get(line=line)
    for field, value in values.items():
        old = getattr(policy, field)
        if old != value:
            inspection_services.log_line_event(
                line=line, field=field, old=old, new=value, changed_by=changed_by, reason=reason
            )
            setattr(policy, field, value)
    policy.save()
    return policy
