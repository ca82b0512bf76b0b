"""The pipeline-run page follows a run while a worker moves it along: each step's state,
progress and log change in the page without a reload, and the page ends on the outcome."""

from django.utils import timezone

from ml import pipeline
from ml.models import PipelineRun, PipelineRunState, PipelineStep, StepState
from tests.helpers import seed_model_version


def running_run(line):
    """A run as a worker leaves it mid-way: ingest done, statistics running, the rest pending."""
    now = timezone.now()
    run = PipelineRun.objects.create(line=line, trigger="manual", state=PipelineRunState.RUNNING)
    for position, name in enumerate(pipeline.STEPS):
        PipelineStep.objects.create(
            run=run,
            name=name,
            position=position,
            state={0: StepState.SUCCEEDED, 1: StepState.RUNNING}.get(position, StepState.PENDING),
            progress=1.0 if position == 0 else 0.0,
            attempts=1 if position < 2 else 0,
            started_at=now if position < 2 else None,
            heartbeat_at=now if position < 2 else None,
            finished_at=now if position == 0 else None,
        )
    return run


def row(page, step, field):
    return page.locator(f'tr[data-step="{step}"] [data-field="{field}"]')


def move(run, name, **fields):
    PipelineStep.objects.filter(run=run, name=name).update(heartbeat_at=timezone.now(), **fields)


def test_the_run_page_follows_a_run_to_its_candidate(make_line, make_user, login, screenshot):
    line = make_line(name="line-a")
    run = running_run(line)
    page = login(make_user("sam", "supervisor", [line]))
    page.goto(f"/models/runs/{run.pk}/")
    assert row(page, "statistics", "state").inner_text() == "running"
    assert page.locator("[data-run-retry]").is_hidden()

    move(run, "statistics", state=StepState.SUCCEEDED, progress=1.0, finished_at=timezone.now())
    move(
        run,
        "transform",
        state=StepState.RUNNING,
        progress=0.5,
        attempts=1,
        started_at=timezone.now(),
        log="train: 80 images",
    )
    page.wait_for_function(
        """() => document.querySelector('tr[data-step="transform"] progress').value === 0.5"""
    )
    assert row(page, "transform", "state").inner_text() == "running"
    assert row(page, "statistics", "state").inner_text() == "succeeded"
    assert row(page, "transform", "log").text_content() == "train: 80 images"
    screenshot(page, "pipeline-run-running")

    candidate = seed_model_version("v-candidate")
    PipelineStep.objects.filter(run=run).update(
        state=StepState.SUCCEEDED, progress=1.0, finished_at=timezone.now()
    )
    PipelineRun.objects.filter(pk=run.pk).update(
        state=PipelineRunState.SUCCEEDED, candidate=candidate, finished_at=timezone.now()
    )
    link = page.locator("[data-run-candidate] a", has_text="v-candidate")
    link.wait_for()
    assert page.locator("[data-run-state]").inner_text() == "succeeded"
    screenshot(page, "pipeline-run-succeeded")
    link.click()
    page.wait_for_url(f"**/models/{candidate.pk}/")


def test_a_failed_step_shows_its_error_and_the_retry_button(
    make_line, make_user, login, screenshot
):
    line = make_line(name="line-a")
    run = running_run(line)
    page = login(make_user("sam", "supervisor", [line]))
    page.goto(f"/models/runs/{run.pk}/")
    move(
        run,
        "statistics",
        state=StepState.FAILED,
        finished_at=timezone.now(),
        error="schema break: labels: classes rust are not the line's classes",
    )
    PipelineRun.objects.filter(pk=run.pk).update(
        state=PipelineRunState.FAILED, error="statistics failed", finished_at=timezone.now()
    )
    page.locator("[data-run-retry]").wait_for(state="visible")
    assert "classes rust" in row(page, "statistics", "error").inner_text()
    assert page.locator("[data-run-error]").inner_text() == "statistics failed"
    assert page.locator('tr[data-step="statistics"]').get_attribute("class") == "failed"
    screenshot(page, "pipeline-run-failed")
