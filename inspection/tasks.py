import logging
import time

import kombu.exceptions
import redis.exceptions
from celery import Task, shared_task
from celery.exceptions import TimeoutError as CeleryTimeout
from celery.result import AsyncResult
from django.conf import settings

from inspection import decisions, mirror, services
from inspection.models import FailSafeReason, Inspection
from loupe.common import metrics
from loupe.common.cpu_priority import step_back_from_station_work
from loupe.common.time_limits import time_limits

logger = logging.getLogger(__name__)

# What a result backend or broker that went away raises (Redis restarted, unreachable)
BROKER_DOWN = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def prediction_task_id(inspection_id: int) -> str:
    # One id per inspection: the waiting request finds the result without a handle, and a
    # duplicated send is visibly the same task.
    return f"inspection.predict:{inspection_id}"


class _PredictTask(Task):
    def on_success(self, retval, task_id, args, kwargs) -> None:
        # after the result is stored, so the station's answer never waits for this send
        if retval:
            enqueue_challenger_prediction(args[0])


@shared_task(
    base=_PredictTask,
    name="inspection.predict",
    acks_late=True,
    autoretry_for=(OSError,),
    retry_backoff=True,
    max_retries=5,
    **time_limits("inference"),
)
def predict_task(inspection_id: int) -> bool:
    """Predict and route the item; True when a mirror challenger is to predict on it too
    (sent by on_success, once the answer is out)."""
    # the sender's headers label the figures (loupe.common.metrics); headers, not arguments,
    # so a worker of the previous release takes the message as before during an upgrade
    sent = predict_task.request.headers or {}
    line, station = sent.get("loupe_line", ""), sent.get("loupe_station", "")
    if sent.get("loupe_sent_at") is not None:
        metrics.record_queue_wait(line=line, station=station, sent_at=sent["loupe_sent_at"])
    labels = metrics.current_station.set((line, station))
    try:
        inspection = services.predict_and_route(inspection_id=inspection_id)
    finally:
        metrics.current_station.reset(labels)
    return inspection is not None and mirror.wants_challenger_prediction(inspection)


@shared_task(
    name="inspection.predict_challenger",
    bind=True,
    acks_late=True,
    **time_limits("inference"),
)
def predict_challenger_task(self, inspection_id: int) -> None:
    """A mirror challenger's prediction, after the active model answered (inspection.mirror).
    A worker that serves the challenger queue alone steps back from the cores (at
    LOUPE_CHALLENGER_NICE), so the stations' predictions go first; its backlog is sampled
    down when it falls behind."""
    if not self.request.is_eager and set(self.app.amqp.queues.consume_from) == {
        settings.LOUPE_CHALLENGER_QUEUE
    }:
        step_back_from_station_work(nice=settings.LOUPE_CHALLENGER_NICE, kind="challenger")
    mirror.record_challenger_prediction(inspection_id=inspection_id)


_backlog = {"checked_at": float("-inf"), "depth": 0}


def challenger_backlog() -> int:
    """Messages waiting on the challenger queue, asked of the broker at most once a second per
    process (a passive declare, which Redis and RabbitMQ both answer; a queue never used yet
    counts 0)."""
    now = time.monotonic()
    if now - _backlog["checked_at"] >= 1.0:
        _backlog["checked_at"] = now
        try:
            with predict_task.app.connection_for_write() as connection:
                declared = connection.default_channel.queue_declare(
                    queue=settings.LOUPE_CHALLENGER_QUEUE, passive=True
                )
            _backlog["depth"] = declared.message_count
        except Exception:  # noqa: BLE001 - no such queue yet, or a broker hiccup: send
            _backlog["depth"] = 0
    return _backlog["depth"]


def enqueue_challenger_prediction(inspection_id: int) -> bool:
    """Send the mirror challenger's task to its own queue, unless the queue holds more than
    LOUPE_CHALLENGER_MAX_BACKLOG: the challenger is then sampled down to what its workers keep
    up with, instead of piling up work nobody waits for. Never raises: the item is answered."""
    if predict_task.app.conf.task_always_eager:
        predict_challenger_task.apply((inspection_id,))  # embedded: in-process, after the answer
        return True
    if challenger_backlog() > settings.LOUPE_CHALLENGER_MAX_BACKLOG:
        metrics.record_challenger_skipped()
        return False
    try:
        predict_challenger_task.apply_async(
            (inspection_id,), queue=settings.LOUPE_CHALLENGER_QUEUE, ignore_result=True
        )
    except Exception:  # noqa: BLE001 - a lost comparison, never a lost answer
        logger.exception("inspection %s: could not send the challenger's task", inspection_id)
        return False
    return True


@shared_task(name="inspection.route_overdue", **time_limits("inference"))
def route_overdue_task() -> int:
    """Periodic (loupe.periodic): the fail-safe for items a dead process left unrouted."""
    routed = decisions.route_overdue_inspections()
    metrics.record_overdue_fail_safe(routed)
    return routed


def enqueue_prediction(inspection_id: int, *, line: str = "", station: str = "") -> None:
    """Send the prediction task; if the broker cannot be reached, the fail-safe applies now.
    `line` and `station` (names) only label the worker's figures."""
    try:
        predict_task.apply_async(
            (inspection_id,),
            task_id=prediction_task_id(inspection_id),
            headers={"loupe_sent_at": time.time(), "loupe_line": line, "loupe_station": station},
        )
    except Exception:
        logger.exception("inspection %s: could not enqueue prediction", inspection_id)
        inspection = Inspection.objects.get(pk=inspection_id)
        decisions.apply_fail_safe(inspection=inspection, reason=FailSafeReason.ENQUEUE_FAILED)


def wait_for_prediction(inspection_id: int, *, timeout_s: float) -> None:
    """Block until the prediction task finished or the timeout passed (eager tasks are done)."""
    if predict_task.app.conf.task_always_eager or timeout_s <= 0:
        return
    try:
        AsyncResult(prediction_task_id(inspection_id)).get(
            timeout=timeout_s, propagate=False, disable_sync_subtasks=False
        )
    except CeleryTimeout:
        pass
    except BROKER_DOWN as exc:
        # No answer can come through a result backend that is down: the caller routes the
        # item by what the database says, and gives it the fail-safe if nothing routed it.
        logger.warning("inspection %s: cannot wait for its prediction (%s)", inspection_id, exc)
