"""What retraining runs leave behind, cleaned up by a periodic job (loupe.periodic).

A run's folder (LOUPE_MODEL_DIR/runs/<id>: the COCO copies of its dataset version that the
steps train and evaluate on) is removed as soon as the run succeeds (ml.pipeline.steps). A
failed run keeps it for FAILED_RUN_KEEP, so a retry skips writing it again; after that, or
once the run is gone, the folder goes, and a retry writes it again (ml.pipeline.runner). A run
whose worker died is marked failed, with its step, instead of "running" forever.
"""

import logging
import shutil
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from ml.models import PipelineRun, PipelineRunState, PipelineStep, StepState
from ml.pipeline.steps import STALE_AFTER

logger = logging.getLogger(__name__)

FAILED_RUN_KEEP = timedelta(days=7)


def fail_stopped_runs(*, now) -> int:
    """Mark failed each run whose running step has not logged for STALE_AFTER; returns how
    many. A step that speaks again in between is left alone (its heartbeat is compared)."""
    cutoff = now - STALE_AFTER
    stopped = PipelineStep.objects.filter(
        state=StepState.RUNNING, run__state=PipelineRunState.RUNNING
    ).filter(Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff))
    failed = 0
    for step in stopped:
        message = "the worker stopped during this step; retry the run"
        with transaction.atomic():
            if not PipelineStep.objects.filter(
                pk=step.pk, state=StepState.RUNNING, heartbeat_at=step.heartbeat_at
            ).update(state=StepState.FAILED, error=message, finished_at=now):
                continue
            failed += PipelineRun.objects.filter(
                pk=step.run_id, state=PipelineRunState.RUNNING
            ).update(
                state=PipelineRunState.FAILED, error=f"{step.name}: {message}", finished_at=now
            )
    return failed


def folder_is_kept(run: dict | None, *, now) -> bool:
    if run is None or run["state"] == PipelineRunState.SUCCEEDED:
        return False
    if run["state"] == PipelineRunState.FAILED:
        return run["finished_at"] is None or run["finished_at"] > now - FAILED_RUN_KEEP
    return True  # pending or running: its steps read the folder


def clean_up_runs(*, now=None) -> dict:
    """Fail the runs whose worker died and remove the run folders nothing will read again.
    Safe to repeat and beside live runs. Returns {"failed": n, "folders": n}."""
    now = now or timezone.now()
    failed = fail_stopped_runs(now=now)
    root = Path(settings.LOUPE_MODEL_DIR) / "runs"
    folders = (
        [f for f in root.iterdir() if f.is_dir() and f.name.isdigit()] if root.is_dir() else []
    )
    runs = {
        r["pk"]: r
        for r in PipelineRun.objects.filter(pk__in=[int(f.name) for f in folders]).values(
            "pk", "state", "finished_at"
        )
    }
    removed = 0
    for folder in folders:
        if not folder_is_kept(runs.get(int(folder.name)), now=now):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if failed or removed:
        logger.warning(
            "retraining runs: %d stopped runs failed, %d folders removed", failed, removed
        )
    return {"failed": failed, "folders": removed}
