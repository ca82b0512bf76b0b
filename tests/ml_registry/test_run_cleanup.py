"""What retraining runs leave behind: their folders and runs whose worker died."""

from datetime import timedelta

import pytest
from django.utils import timezone

from ml import pipeline
from ml.models import PipelineRun, PipelineRunState, PipelineStep, RunTrigger, StepState

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def own_model_dir(settings, tmp_path):
    """Other tests' runs leave folders in the shared model folder; these count their own."""
    settings.LOUPE_MODEL_DIR = tmp_path


def make_run(line, state, *, finished_days_ago=None, done=(), running=None, quiet_min=0):
    """A run of `line` in `state`, its steps: `done` succeeded, `running` running (its last
    heartbeat quiet_min minutes ago), the rest pending; with a folder of files, as transform
    leaves it."""
    now = timezone.now()
    run = PipelineRun.objects.create(line=line, trigger=RunTrigger.MANUAL, state=state)
    if finished_days_ago is not None:
        run.finished_at = now - timedelta(days=finished_days_ago)
        run.save(update_fields=["finished_at"])
    for position, name in enumerate(pipeline.STEPS):
        step_state = (
            StepState.SUCCEEDED
            if name in done
            else StepState.RUNNING
            if name == running
            else StepState.PENDING
        )
        beat = now - timedelta(minutes=quiet_min) if name == running else None
        PipelineStep.objects.create(
            run=run,
            name=name,
            position=position,
            state=step_state,
            started_at=beat,
            heartbeat_at=beat,
        )
    folder = pipeline.run_dir(run.pk) / "train"
    folder.mkdir(parents=True)
    (folder / "annotations.json").write_text("{}")
    return run


def test_folders_nothing_will_read_again_are_removed_and_the_others_kept(make_line):
    lines = [make_line(name=f"line-{i}") for i in range(5)]
    succeeded = make_run(lines[0], PipelineRunState.SUCCEEDED, finished_days_ago=0)
    failed_recently = make_run(lines[1], PipelineRunState.FAILED, finished_days_ago=1)
    failed_long_ago = make_run(lines[2], PipelineRunState.FAILED, finished_days_ago=8)
    running = make_run(lines[3], PipelineRunState.RUNNING, running="train", quiet_min=1)
    deleted = make_run(lines[4], PipelineRunState.FAILED, finished_days_ago=0)
    deleted_folder = pipeline.run_dir(deleted.pk)
    deleted.delete()

    assert pipeline.clean_up_runs() == {"failed": 0, "folders": 3}
    assert not pipeline.run_dir(succeeded.pk).exists()
    assert not pipeline.run_dir(failed_long_ago.pk).exists()
    assert not deleted_folder.exists()
    # a failed run can be retried for a week without writing its folders again
    assert pipeline.run_dir(failed_recently.pk).exists()
    assert pipeline.run_dir(running.pk).exists()
    assert pipeline.clean_up_runs() == {"failed": 0, "folders": 0}


def test_a_run_whose_worker_died_is_failed_with_its_step_and_can_be_retried(make_line):
    line = make_line(name="press-9")
    stopped = make_run(
        line, PipelineRunState.RUNNING, done=pipeline.STEPS[:4], running="train", quiet_min=16
    )
    assert pipeline.clean_up_runs()["failed"] == 1
    stopped.refresh_from_db()
    train = stopped.steps.get(name="train")
    assert (stopped.state, train.state) == (PipelineRunState.FAILED, StepState.FAILED)
    assert stopped.error == "train: the worker stopped during this step; retry the run"
    assert pipeline.is_retryable(stopped)
    assert pipeline.run_dir(stopped.pk).exists()  # failed minutes ago: kept for the retry


def test_a_live_step_is_left_running(make_line):
    line = make_line(name="press-9")
    live = make_run(line, PipelineRunState.RUNNING, running="train", quiet_min=14)
    assert pipeline.clean_up_runs()["failed"] == 0
    live.refresh_from_db()
    assert live.state == PipelineRunState.RUNNING


def test_a_retry_after_the_folder_was_removed_writes_it_again(
    make_line, django_capture_on_commit_callbacks
):
    line = make_line(name="press-9")
    run = make_run(line, PipelineRunState.FAILED, finished_days_ago=8, done=pipeline.STEPS[:5])
    pipeline.clean_up_runs()
    with django_capture_on_commit_callbacks(execute=False):
        pipeline.retry_run(run=run)
    states = dict(run.steps.values_list("name", "state"))
    assert [n for n in pipeline.STEPS if states[n] == StepState.SUCCEEDED] == [
        "ingest",
        "statistics",
    ]


def test_a_retry_with_its_folder_still_there_starts_at_the_failed_step(
    make_line, django_capture_on_commit_callbacks
):
    line = make_line(name="press-9")
    run = make_run(line, PipelineRunState.FAILED, finished_days_ago=1, done=pipeline.STEPS[:5])
    with django_capture_on_commit_callbacks(execute=False):
        pipeline.retry_run(run=run)
    states = dict(run.steps.values_list("name", "state"))
    assert [n for n in pipeline.STEPS if states[n] == StepState.SUCCEEDED] == list(
        pipeline.STEPS[:5]
    )
