"""What every step body gets and shares: the StepContext, StepError, and the helpers that
read the earlier steps' artifacts (the dataset version, the COCO folders, model versions).

Below every other module of the package: it imports none of them.
"""

import time
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from datasets.models import DatasetVersion, Split
from labeling.models import LabelSource
from ml.engine.dataset import LabeledImage, load_coco_folder
from ml.models import ModelVersion, PipelineRun, PipelineStep

FLUSH_EVERY_S = 1.0
MAX_LOG_LINES = 2000


class StepError(Exception):
    """A failure the step explains itself (a schema break, a budget missed): its message is
    shown as it is, without a traceback."""


def run_dir(run_id: int) -> Path:
    return Path(settings.LOUPE_MODEL_DIR) / "runs" / str(run_id)


class StepContext:
    """What a step function gets: the run, the earlier steps' artifacts, a log and a progress
    bar that reach the database at most every FLUSH_EVERY_S (the run page polls them)."""

    def __init__(self, run: PipelineRun, step: PipelineStep, earlier: dict[str, dict]):
        self.run = run
        self.step = step
        self.earlier = earlier
        self.config = run.config
        self.work_dir = run_dir(run.pk)
        self._lines: list[str] = []
        self._progress = 0.0
        self._flushed = time.monotonic()

    def log(self, text: str) -> None:
        self._lines.append(f"{timezone.now():%H:%M:%S} {text}")
        self._lines = self._lines[-MAX_LOG_LINES:]
        self._maybe_flush()

    def progress(self, fraction: float) -> None:
        self._progress = min(max(float(fraction), 0.0), 1.0)
        self._maybe_flush()

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._flushed >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        PipelineStep.objects.filter(pk=self.step.pk).update(
            log="\n".join(self._lines), progress=self._progress, heartbeat_at=timezone.now()
        )
        self._flushed = time.monotonic()


def dataset_version(context: StepContext) -> DatasetVersion:
    """The version the ingest step chose."""
    return DatasetVersion.objects.get(pk=context.earlier["ingest"]["dataset_version"])


def correction_items(run: PipelineRun, version: DatasetVersion):
    """Items corrected after the baseline's training data was frozen, outside the train split:
    what the active model got wrong since, and the candidate did not train on."""
    baseline = run.baseline
    if baseline is None:
        return version.items.none()
    since = baseline.dataset_version.created_at if baseline.dataset_version else baseline.created_at
    return version.items.filter(
        source=LabelSource.CORRECTION, revision__created_at__gt=since
    ).exclude(split=Split.TRAIN)


def folder_samples(context: StepContext, key: str) -> list[LabeledImage]:
    """The images of one COCO folder the transform step wrote (train, val, test, corrections)."""
    folder = Path(settings.LOUPE_MODEL_DIR) / context.earlier["transform"]["folders"][key]
    return load_coco_folder(folder)


def training_samples(context: StepContext) -> list[LabeledImage]:
    """The train split, with each corrected image repeated correction_repeats times."""
    train = folder_samples(context, "train")
    corrected = set(context.earlier["transform"]["train_corrections"])
    extra = [s for s in train if s.path.name in corrected]
    return train + extra * max(context.config["correction_repeats"] - 1, 0)


def line_thresholds(line) -> dict:
    return {"accept_threshold": line.accept_threshold, "reject_threshold": line.reject_threshold}


# torch, and the engine modules that load it, are imported inside the functions that use
# them: the web process imports this package to start runs and must not load torch.


def prepare_torch() -> str:
    """Give training its threads (LOUPE_TRAIN_THREADS, every core by default); returns the
    device to train on."""
    import torch

    torch.set_num_threads(settings.LOUPE_TRAIN_THREADS)
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_version(version: ModelVersion, device: str = "cpu"):
    """A registered version's model, its artifact checked against the registered hash."""
    from ml.engine.artifact import load_artifact

    return load_artifact(
        version.artifact_file, device=device, expected_sha256=version.artifact_sha256
    )
