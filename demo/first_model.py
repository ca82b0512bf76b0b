"""The demo line's labeled data and first model, made the way its users make them: a data-team
user imports the generated images (the import page's path: datasets.dispatch.start_import) and
freezes a dataset version; a supervisor trains the first model from that frozen version with
the retraining pipeline (ml.pipeline.start_run) and promotes it. setup_demo calls these.

Each waits for its run to finish, so the same calls work embedded (tasks run in this process,
finished on return) and beside real workers (polled until done).
"""

import tempfile
import time
import zipfile
from pathlib import Path

from django.core.files import File

from datasets import dispatch
from datasets.models import DatasetImport, DatasetVersion, ExportImportState, ImportFormat
from datasets.services import freeze_dataset
from demo.loop_scenario import describe_run, wait_for_run
from ml import pipeline, services
from ml.models import ModelVersion, RunTrigger

# A model from scratch at a 64-pixel input: a quarter of the work of the engine's 128-pixel
# default, and on the demo's images as good for deciding (32 epochs: test AUROC 0.997, F1 0.946
# at the reject threshold 0.8; 20 epochs: 0.989, 0.929). A fixed number of epochs with a budget
# far above it: a busy machine trains for longer, never into a worse model (a 180 s budget cut
# a loaded run to 4 epochs and AUROC 0.49). One setting, so tuning is a single one-epoch trial.
FIRST_RUN = {
    "epochs": 24,
    "input_size": 64,
    "learning_rates": [0.003],
    "augmentations": [0.25],
    "trial_epochs": 1,
    "tune_budget_s": 120,
    "train_budget_s": 900,
    "warm_start": False,
}
IMPORT_TIMEOUT_S = 900.0
RUN_TIMEOUT_S = 1800.0


class DemoSetupFailed(Exception):
    """A step of the demo's setup failed; the message says which and why."""


def zip_coco_folder(folder: Path, archive: Path) -> Path:
    """A generate_images folder (annotations.json, images/) as the COCO zip a user uploads.
    Stored, not deflated: PNGs do not compress."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.write(folder / "annotations.json", "annotations.json")
        for image in sorted((folder / "images").iterdir()):
            zf.write(image, f"images/{image.name}")
    return archive


def import_labeled_images(*, line, folder: Path, user) -> DatasetImport:
    """Import a generate_images folder as labeled inspections of `line`, uploaded by `user`
    (a data-team member: the labels are recorded as theirs). Returns the finished import;
    raises DemoSetupFailed with the importer's reasons when it fails. Safe to repeat: images
    the line already has are skipped."""
    with tempfile.TemporaryDirectory(prefix="loupe-demo-") as scratch:
        archive = zip_coco_folder(Path(folder), Path(scratch) / f"{Path(folder).name}.zip")
        with archive.open("rb") as handle:
            record = dispatch.start_import(
                line=line,
                fmt=ImportFormat.COCO,
                upload=File(handle, name=archive.name),
                user=user,
            )
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    while True:
        record.refresh_from_db()
        if record.state in (ExportImportState.DONE, ExportImportState.FAILED):
            break
        if time.monotonic() > deadline:
            raise DemoSetupFailed(f"the import is still {record.state}: is a datasets worker up?")
        time.sleep(1.0)
    if record.state == ExportImportState.FAILED:
        problems = "; ".join(f"{p['file']}: {p['reason']}" for p in record.problems[:5])
        raise DemoSetupFailed(f"the import failed: {record.error} {problems}".strip())
    return record


def freeze_line(*, line, user, name: str) -> DatasetVersion:
    """The line's labeled inspections frozen as version `name`, or that version when it
    exists already (a repeated setup trains from the same data)."""
    existing = DatasetVersion.objects.filter(name=name).first()
    if existing is not None:
        return existing
    version, _created = freeze_dataset(filters={"lines": [line.name]}, user=user, name=name)
    return version


def train_first_model(
    *, line, dataset_version: DatasetVersion, supervisor, config: dict | None = None
) -> tuple[ModelVersion, str]:
    """Train the line's first model from `dataset_version` with the retraining pipeline,
    started and promoted by `supervisor`. Returns (the active version, the run's step table).
    Raises DemoSetupFailed, with the failing step's error, when the run registers nothing."""
    run = pipeline.start_run(
        line=line,
        trigger=RunTrigger.MANUAL,
        started_by=supervisor,
        config=config or FIRST_RUN,
        dataset_version=dataset_version,
    )
    run = wait_for_run(run, timeout_s=RUN_TIMEOUT_S)
    if run.candidate is None:
        raise DemoSetupFailed(f"the first training run failed: {run.error}\n{describe_run(run)}")
    version = services.promote_model_version(
        model_version=run.candidate,
        changed_by=supervisor.username,
        expected_active=None,
        reason=f"the demo line's first model, trained on {dataset_version.name}",
    )
    return version, describe_run(run)
