"""Loupe's Prometheus figures that processes count as they work (the station path, workers).

Defined once here, so every app records into the same names; /metrics (loupe.metrics_view)
merges every process's files and adds the figures read from the database at scrape time.
Labels are bounded by configuration (lines, stations, model versions, queues, task names,
error codes), never by item. Gauges say how processes combine (multiprocess_mode).

Recording must never break the work it measures: the `record_*` helpers swallow and log any
error of the metrics files (a full disk, a folder removed under a running process).
"""

import logging
import math
import time
from contextvars import ContextVar

from loupe.common import metrics_files

metrics_files.configure_default()  # before prometheus_client picks its mode on import

from prometheus_client import Counter, Gauge, Histogram  # noqa: E402

logger = logging.getLogger(__name__)

# from 1 ms to 10 s: a line's budget is typically 0.2 to 2 s
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATION = ("line", "station")
STATION_MODEL = ("line", "station", "model_version")

STATION_REQUESTS = Counter(
    "loupe_station_requests_total",
    "New items a station posted, by the answer it got (outcome accept/reject/review) and who "
    "decided (model, fail_safe, human, none while in review). Retries are counted apart.",
    [*STATION_MODEL, "outcome", "decided_by"],
)
STATION_RETRIES = Counter(
    "loupe_station_retries_total",
    "Posts of an external_id the station had sent before (answered from the first item).",
    STATION,
)
FAIL_SAFE = Counter(
    "loupe_fail_safe_decisions_total",
    "Items given the line's fail-safe, by reason (no_model, model_error, budget_missed, "
    "enqueue_failed; overdue: left unrouted by a process that died, line unknown).",
    [*STATION_MODEL, "reason"],
)
INVALID_INPUTS = Counter(
    "loupe_station_invalid_inputs_total",
    "Station posts refused with a 4xx, by error code (line and station empty when the token "
    "was not accepted).",
    [*STATION, "code"],
)
EMPTY_OUTPUTS = Counter(
    "loupe_model_empty_outputs_total",
    "Model outputs with nothing to act on: a probability that is not a number in [0, 1], or "
    "one that judges the image defective (the model's image threshold) but names no region.",
    STATION_MODEL,
)
CHALLENGER_SKIPPED = Counter(
    "loupe_challenger_skipped_total",
    "Items a mirror challenger did not predict on because its queue held more than "
    "LOUPE_CHALLENGER_MAX_BACKLOG messages (sampled down to what its workers keep up with).",
)
RECEIVE_SECONDS = Histogram(
    "loupe_station_receive_seconds",
    "Receive: from the request reaching the view to the item stored and sent to the workers.",
    STATION,
    buckets=LATENCY_BUCKETS,
)
QUEUE_SECONDS = Histogram(
    "loupe_station_queue_seconds",
    "Queue: from the prediction task sent to a worker starting it.",
    STATION,
    buckets=LATENCY_BUCKETS,
)
MODEL_SECONDS = Histogram(
    "loupe_model_inference_seconds",
    "Model: decoding the stored image and running the model on it, in the worker.",
    STATION_MODEL,
    buckets=LATENCY_BUCKETS,
)
REQUEST_SECONDS = Histogram(
    "loupe_station_request_seconds",
    "Total: from the request reaching the view to its answer (new items; model_version is "
    "the version that answered, empty when none did).",
    STATION_MODEL,
    buckets=LATENCY_BUCKETS,
)

WORKER = ("queue",)
WORKER_BUSY = Counter(
    "loupe_worker_busy_seconds_total",
    "Seconds worker processes spent running tasks; divided by loupe_worker_processes, the "
    "share of time busy.",
    [*WORKER, "task"],
)
WORKER_TASKS = Counter(
    "loupe_worker_tasks_total",
    "Tasks a worker process ran, by final state.",
    [*WORKER, "task", "state"],
)
WORKER_PROCESSES = Gauge(
    "loupe_worker_processes",
    "Live worker pool processes.",
    WORKER,
    multiprocess_mode="livesum",
)
WORKER_MEMORY = Gauge(
    "loupe_worker_memory_bytes",
    "Resident memory of the live worker pool processes, summed.",
    WORKER,
    multiprocess_mode="livesum",
)
WORKER_MEMORY_MAX = Gauge(
    "loupe_worker_process_memory_max_bytes",
    "Resident memory of the largest live worker pool process.",
    WORKER,
    multiprocess_mode="livemax",
)
WORKER_HEARTBEAT = Gauge(
    "loupe_worker_heartbeat_timestamp_seconds",
    "Last time any pool process of the worker said it was alive (every few seconds, busy or "
    "not): stale means the worker is down or hung.",
    WORKER,
    multiprocess_mode="max",
)

# (line, station) of the item a worker is predicting, set by inspection.tasks around the
# service call, so the inference adapter labels its timing without a query of its own
current_station: ContextVar[tuple[str, str] | None] = ContextVar("current_station", default=None)


def never_raises(record):
    """Log, never raise, what goes wrong recording a figure."""

    def guarded(*args, **kwargs) -> None:
        try:
            record(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a figure must never cost an item its answer
            logger.exception("could not record a metric (%s)", record.__name__)

    guarded.__name__ = record.__name__
    guarded.__doc__ = record.__doc__
    return guarded


@never_raises
def record_answer(
    *,
    line: str,
    station: str,
    model_version: str,
    outcome: str,
    decided_by: str,
    fail_safe_reason: str,
    created: bool,
    received_s: float | None,
) -> None:
    """A station's item answered: its outcome, its fail-safe if any, how long receiving took."""
    if not created:
        STATION_RETRIES.labels(line, station).inc()
        return
    STATION_REQUESTS.labels(line, station, model_version, outcome, decided_by or "none").inc()
    if fail_safe_reason:
        FAIL_SAFE.labels(line, station, model_version, fail_safe_reason).inc()
    if received_s is not None:
        RECEIVE_SECONDS.labels(line, station).observe(received_s)


@never_raises
def record_request_seconds(*, line: str, station: str, model_version: str, seconds: float) -> None:
    REQUEST_SECONDS.labels(line, station, model_version).observe(seconds)


@never_raises
def record_invalid_input(*, line: str, station: str, code: str) -> None:
    INVALID_INPUTS.labels(line, station, code).inc()


@never_raises
def record_overdue_fail_safe(count: int) -> None:
    if count:
        FAIL_SAFE.labels("", "", "", "overdue").inc(count)


@never_raises
def record_challenger_skipped() -> None:
    CHALLENGER_SKIPPED.inc()


@never_raises
def record_queue_wait(*, line: str, station: str, sent_at: float) -> None:
    """The wait between a web process sending the task (wall clock) and a worker starting it;
    a negative wait (clocks of two machines apart) counts as none."""
    QUEUE_SECONDS.labels(line, station).observe(max(time.time() - sent_at, 0.0))


@never_raises
def record_inference(
    *, model_version: str, seconds: float, probability, region_count: int, threshold: float = 0.5
) -> None:
    """`threshold`: the probability from which the model judges an image defective, and so
    always names at least one region."""
    line, station = current_station.get() or ("", "")
    MODEL_SECONDS.labels(line, station, model_version).observe(seconds)
    try:
        probability = float(probability)
    except (TypeError, ValueError):
        probability = math.nan
    # NaN fails both comparisons, so it counts as empty
    if not 0.0 <= probability <= 1.0 or (probability >= threshold and region_count == 0):
        EMPTY_OUTPUTS.labels(line, station, model_version).inc()


@never_raises
def record_task(*, queue: str, task: str, seconds: float, state: str) -> None:
    WORKER_BUSY.labels(queue, task).inc(seconds)
    WORKER_TASKS.labels(queue, task, state).inc()


def process_memory_bytes(pid: str = "self") -> int:
    """Resident memory from /proc (Linux), 0 where it cannot be read."""
    import os

    try:
        with open(f"/proc/{pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@never_raises
def record_worker_alive(*, queue: str) -> None:
    """What a pool process says every few seconds: alive, and how much memory it holds."""
    memory = process_memory_bytes()
    WORKER_PROCESSES.labels(queue).set(1)
    WORKER_MEMORY.labels(queue).set(memory)
    WORKER_MEMORY_MAX.labels(queue).set(memory)
    WORKER_HEARTBEAT.labels(queue).set(time.time())


def declared_families() -> list:
    """Every figure defined here, described without samples."""
    from prometheus_client.metrics import MetricWrapperBase

    return [
        family
        for value in globals().values()
        if isinstance(value, MetricWrapperBase)
        for family in value.describe()
    ]


def mark_process_dead(pid: int, folder=None) -> None:
    """Forget a finished process's live gauges (its counters stay counted)."""
    from prometheus_client import multiprocess

    try:
        multiprocess.mark_process_dead(pid, str(folder) if folder else None)
    except OSError:
        logger.warning("could not remove the live gauges of process %s", pid)
