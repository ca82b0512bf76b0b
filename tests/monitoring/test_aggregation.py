"""The monitoring job against PostgreSQL: what it counts, where, and that reruns, late human
decisions, undos and outages all end in the figures the tables hold."""

import math
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from inspection import decisions, escapes, services
from inspection.models import FailSafeReason, Inspection, ReviewItem
from monitoring import aggregation, figures, histograms
from monitoring.models import AggregationCursor, Bucket, Width
from review import services as review_services
from tests.monitoring.conftest import now, totals

pytestmark = pytest.mark.django_db

LATENCIES_MS = [12, 15, 20, 25, 31, 40, 55, 70, 90, 130, 400, 1500]


@pytest.fixture
def partial(make_line, station_with_token):
    line = make_line("mon-partial", level="partial", audit_fraction=0.0)
    cam1, _ = station_with_token(line, "cam-1")
    cam2, _ = station_with_token(line, "cam-2")
    return line, cam1, cam2


@pytest.fixture
def seeded(partial, seed, decide, inspector):
    """cam-1: 4 model accepts, 3 model rejects, 3 unsure (2 then decided by a human, seeing the
    model); cam-2: 2 fail-safes to review; offline stations: 2 items that must not count."""
    line, cam1, cam2 = partial
    latencies = iter(LATENCIES_MS)
    items = [seed(cam1, f"a{i}", p=0.1, latency_ms=next(latencies)) for i in range(4)]
    items += [seed(cam1, f"r{i}", p=0.9, latency_ms=next(latencies)) for i in range(3)]
    unsure = [seed(cam1, f"u{i}", p=0.5, latency_ms=next(latencies)) for i in range(3)]
    for n, reason in enumerate((FailSafeReason.MODEL_ERROR, FailSafeReason.BUDGET_MISSED)):
        inspection = seed(cam2, f"f{n}")
        decisions.apply_fail_safe(inspection=inspection, reason=reason)
        inspection.refresh_from_db()
        Inspection.objects.filter(pk=inspection.pk).update(
            received_at=inspection.routed_at - timedelta(milliseconds=next(latencies))
        )
    seed(services.import_station(line), "imported", p=0.9, latency_ms=5)
    seed(services.batch_station(line), "batch", p=0.9, latency_ms=5)
    user = inspector(line)
    decide(unsure[0], "accept", user)  # the model (p 0.5 < 0.8) said accept: agrees
    decide(unsure[1], "reject", user)  # disagrees
    return line, user, unsure


def test_counts_rates_and_backlog_of_a_seeded_set(seeded, partial):
    line, _, _ = seeded
    _, cam1, cam2 = partial
    aggregation.aggregate_recent()

    got = totals(line)
    assert (got.items, got.routed, got.predictions) == (12, 12, 10)
    assert got.station_items == {str(cam1.pk): 10, str(cam2.pk): 2}
    assert (got.accepts, got.rejects) == (4 + 1, 3 + 1)
    assert (got.decided_by_model, got.decided_by_human, got.decided_by_fail_safe) == (7, 2, 0)
    assert got.fail_safes == 2
    assert got.fail_safe_reasons == {"model_error": 1, "budget_missed": 1}
    assert got.reviews_decided == 2
    assert (got.seen_items, got.seen_agreeing, got.unbiased_items) == (2, 1, 0)
    # 3 unsure + 2 fail-safe items went to review, 2 were decided
    assert got.review_backlog == 3
    assert got.escapes == 0
    # the hour buckets are the minutes' sums
    hours = totals(line, Width.HOUR)
    assert {n: getattr(hours, n) for n in aggregation.COUNTS} == {
        n: getattr(got, n) for n in aggregation.COUNTS
    }
    assert hours.route_latency == got.route_latency
    assert hours.review_backlog == 3


def _nearest_rank(values, q):
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


@pytest.mark.parametrize("range_key", ["hour", "30d"])
def test_page_figures_have_rates_and_percentiles_within_the_bin_error(seeded, range_key):
    line, _, _ = seeded
    aggregation.aggregate_recent()
    total = figures.line_figures(line=line, range_key=range_key).total

    assert total.items == 12
    assert total.reject_pct == round(100 * 4 / 9, 2)
    assert total.fail_safe_pct == round(100 * 2 / 12, 2)
    assert total.seen_pct == 50.0 and total.unbiased_pct is None
    for q, got in zip(figures.QUANTILES, total.latency_ms, strict=True):
        exact = _nearest_rank(LATENCIES_MS, q)
        assert abs(got - exact) / exact <= histograms.MAX_RELATIVE_ERROR + 0.001, (q, got, exact)


def _rows(line):
    return sorted(
        (b.width_s, b.start, *(getattr(b, n) for n in (*aggregation.COUNTS, *aggregation.TALLIES)))
        for b in Bucket.objects.filter(line=line)
    )


def test_reruns_change_nothing_and_late_human_decisions_are_picked_up(seeded, decide):
    line, user, unsure = seeded
    aggregation.aggregate_recent()
    first = _rows(line)
    aggregation.aggregate_recent()
    assert _rows(line) == first
    call_command("aggregate_monitoring", "--since", "1h")
    assert _rows(line) == first

    # the last unsure item is decided after the run: the next run counts it
    decide(unsure[2], "reject", user)
    aggregation.aggregate_recent()
    got = totals(line)
    assert (got.reviews_decided, got.decided_by_human, got.rejects) == (3, 3, 5)
    assert got.review_backlog == 2

    # undone within the window: gone from the figures again at the next run
    item = ReviewItem.objects.get(inspection=unsure[2])
    review_services.undo_decision(item=item, user=user)
    aggregation.aggregate_recent()
    assert _rows(line) == first


def test_unbiased_agreement_and_escapes(make_line, station_with_token, seed, decide, inspector):
    shadow = make_line("mon-shadow", level="shadow")
    cam, _ = station_with_token(shadow, "cam-s")
    user = inspector(shadow)
    for n, (p, outcome) in enumerate([(0.9, "reject"), (0.1, "accept"), (0.1, "reject")]):
        decide(seed(cam, f"s{n}", p=p, latency_ms=30), outcome, user)
    partial = make_line("mon-escapes", level="partial", audit_fraction=0.0)
    cam_p, _ = station_with_token(partial, "cam-p")
    accepted = seed(cam_p, "serial-7", p=0.05, latency_ms=30)
    escapes.record_reported_escape(
        line=partial, serial=accepted.external_id, note="return", user=user
    )
    aggregation.aggregate_recent()

    got = totals(shadow)
    assert (got.unbiased_items, got.unbiased_agreeing, got.seen_items) == (3, 2, 0)
    assert got.escapes == 0
    assert totals(partial).escapes == 1


def test_each_event_is_bucketed_by_its_own_minute(partial, seed):
    line, cam1, _ = partial
    early = seed(cam1, "early", p=0.1, latency_ms=20)
    seed(cam1, "late", p=0.1, latency_ms=20)
    shift = timedelta(minutes=5)
    Inspection.objects.filter(pk=early.pk).update(
        received_at=early.received_at - shift, routed_at=early.routed_at - shift
    )
    aggregation.aggregate_recent()

    buckets = list(Bucket.objects.filter(line=line, width_s=Width.MINUTE, items__gt=0))
    assert len(buckets) == 2
    early_bucket = min(buckets, key=lambda b: b.start)
    assert early_bucket.start == aggregation.floor_to(early.received_at - shift, 60)
    assert (early_bucket.items, early_bucket.routed) == (1, 1)


def test_a_run_after_an_outage_catches_up_from_its_cursor(partial, seed):
    line, cam1, _ = partial
    old = seed(cam1, "old", p=0.9, latency_ms=20)
    back = timedelta(hours=2)
    Inspection.objects.filter(pk=old.pk).update(
        received_at=old.received_at - back, routed_at=old.routed_at - back
    )
    AggregationCursor.objects.create(name=aggregation.CURSOR, until=now() - timedelta(hours=3))
    result = aggregation.aggregate_recent()

    assert result.since <= now() - timedelta(hours=3)
    assert totals(line).items == 1
    assert AggregationCursor.objects.get().until >= now() - timedelta(minutes=1)


def test_the_first_run_without_a_cursor_reads_only_the_trailing_window(partial, seed):
    line, cam1, _ = partial
    old = seed(cam1, "old", p=0.9, latency_ms=20)
    back = timedelta(hours=2)
    Inspection.objects.filter(pk=old.pk).update(
        received_at=old.received_at - back, routed_at=old.routed_at - back
    )
    aggregation.aggregate_recent()
    assert totals(line).items == 0
    # the backfill command is the way to older history
    call_command("aggregate_monitoring", "--since", "3h")
    assert totals(line).items == 1
    assert totals(line, Width.HOUR).items == 1


def test_minute_buckets_past_their_retention_are_dropped_and_hours_kept(partial, seed):
    line, cam1, _ = partial
    old = seed(cam1, "old", p=0.9, latency_ms=20)
    back = aggregation.MINUTE_RETENTION + timedelta(hours=2)
    Inspection.objects.filter(pk=old.pk).update(
        received_at=old.received_at - back, routed_at=old.routed_at - back
    )
    call_command("aggregate_monitoring", "--since", "5d")
    assert totals(line).items == 1
    aggregation.aggregate_recent()
    assert totals(line).items == 0
    assert totals(line, Width.HOUR).items == 1


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--since", "1h", "--until", "2h"]])
def test_the_backfill_command_refuses_bad_times(args):
    with pytest.raises(CommandError):
        call_command("aggregate_monitoring", *args)


def test_the_job_runs_each_minute_on_the_datasets_queue(seeded):
    from datasets.limits import datasets_queue
    from loupe.periodic import periodic_jobs
    from monitoring import tasks

    job = {j.task.name: j for j in periodic_jobs()}["monitoring.aggregate"]
    assert job.every_s == 60.0
    assert job.queue == datasets_queue() != "inference"

    line, _, _ = seeded
    result = tasks.aggregate_monitoring_task.apply().get()
    assert result["minute_buckets"] >= 1
    assert totals(line).items == 12
