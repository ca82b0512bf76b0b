"""Items a dead process left unrouted: routed to the line's fail-safe once well past their
budget, by the start-up of a process that judges items or by `manage.py route_overdue`."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from inspection import decisions, services
from inspection.images import validate_image
from inspection.models import Inspection, InspectionStatus
from tests.helpers import image_bytes

pytestmark = pytest.mark.django_db


def stored_but_never_sent(station, external_id, *, age_s: float) -> Inspection:
    """What a web process that died after storing the image and before the task leaves."""
    image = validate_image(image_bytes(seed=len(external_id)), max_bytes=10**7, max_pixels=10**8)
    inspection, _ = services.receive_inspection(
        station=station, external_id=external_id, image=image, metadata={}
    )
    Inspection.objects.filter(pk=inspection.pk).update(
        received_at=timezone.now() - timedelta(seconds=age_s)
    )
    return inspection


def test_only_items_well_past_their_budget_get_the_fail_safe(make_line):
    line = make_line(name="press", level="full", latency_budget_ms=1000, fail_safe_action="review")
    station, _ = services.create_station(line=line, name="cam")
    lost = stored_but_never_sent(station, "LOST", age_s=40)  # 1 s budget + 30 s grace passed
    waiting = stored_but_never_sent(station, "WAIT", age_s=20)  # its request may still wait

    out = StringIO()
    call_command("route_overdue", stdout=out)
    assert out.getvalue().strip() == "routed 1 overdue items to the fail-safe"
    lost.refresh_from_db()
    waiting.refresh_from_db()
    assert lost.status == InspectionStatus.IN_REVIEW
    assert lost.fail_safe_reason == "budget_missed"
    assert lost.review_item is not None
    assert waiting.status == InspectionStatus.RECEIVED
    assert decisions.route_overdue_inspections() == 0  # never routed twice


def test_prepare_to_judge_routes_the_overdue_before_loading_models(make_line):
    from loupe.startup import prepare_to_judge

    line = make_line(name="press", level="full", fail_safe_action="reject")
    station, _ = services.create_station(line=line, name="cam")
    lost = stored_but_never_sent(station, "LOST", age_s=120)
    prepare_to_judge()
    lost.refresh_from_db()
    assert lost.status == InspectionStatus.DECIDED
    assert lost.decision.outcome == "reject"


def test_the_periodic_jobs_route_the_overdue_in_process_and_on_beat(make_line):
    """Embedded, a thread runs loupe.periodic's jobs in process; in production Celery beat
    sends the same list. Either way a lost item gets its fail-safe without a cron entry."""
    from loupe.celery import app
    from loupe.periodic import periodic_jobs
    from loupe.startup import run_due_jobs

    line = make_line(name="press", level="full", fail_safe_action="reject")
    station, _ = services.create_station(line=line, name="cam")
    lost = stored_but_never_sent(station, "LOST", age_s=120)
    jobs = periodic_jobs()
    names = [job.task.name for job in jobs]
    assert names[0] == "inspection.route_overdue"
    last_run: dict = {}
    assert run_due_jobs(last_run, now=1000.0) == names  # every job runs once at start
    lost.refresh_from_db()
    assert (lost.status, lost.decision.outcome) == (InspectionStatus.DECIDED, "reject")
    assert run_due_jobs(last_run, now=1030.0) == []  # not due again yet
    every_minute = [job.task.name for job in jobs if job.every_s <= 60]
    assert "inspection.route_overdue" in every_minute
    assert run_due_jobs(last_run, now=1060.0) == every_minute

    # beat sends the same list, each job on its queue: never a slow one where stations wait
    app.finalize(auto=True)
    beat = {
        name: (entry["schedule"], entry.get("options"))
        for name, entry in app.conf.beat_schedule.items()
    }
    assert beat == {
        job.task.name: (job.every_s, {"queue": job.queue} if job.queue else {}) for job in jobs
    }
    assert beat["inspection.route_overdue"] == (60.0, {})
    assert beat["datasets.clean_up_orphans"] == (600.0, {"queue": "datasets"})
