"""Telling every process that serves models that what the lines serve has changed: a model
activated, a challenger started, stepped or ended, a level that now asks the model.

Each change commits, then publishes on a Redis channel (the broker's). Every inference and
challenger worker process listens in a daemon thread (loupe.celery) and loads what it does
not hold yet (inspection.inference.warm_up_active_models), so a challenger's first items find
it loaded in every process instead of each process loading it on its first item, past the
line's budget. A listener also looks every LISTEN_TIMEOUT_S without news, so an announcement
lost while Redis was away is caught up within that. Embedded (no broker), the one process that
serves loads it in a thread of its own.
"""

import logging
import threading
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)

CHANNEL = "loupe:serving-changed"
LISTEN_TIMEOUT_S = 30.0
# what changes the set of versions a process must hold (inspection.audit_log's field names)
SERVING_FIELDS = frozenset({"active_model", "rollout", "automation_level"})


def _redis_url() -> str | None:
    url = settings.CELERY_BROKER_URL
    return url if url.startswith(("redis://", "rediss://", "unix://")) else None


def announce_change() -> None:
    """After the current transaction commits, tell every serving process (nothing on a
    rollback: nothing changed)."""
    transaction.on_commit(_publish)


def _publish() -> None:
    url = _redis_url()
    if url is None:
        threading.Thread(target=load_new_versions, name="loupe-warm-up", daemon=True).start()
        return
    try:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        client.publish(CHANNEL, "changed")
        client.close()
    except redis.RedisError as exc:
        # the listeners' own look, every LISTEN_TIMEOUT_S, catches up
        logger.warning("could not announce a serving change: %s", exc)


def load_new_versions() -> None:
    """Load, in this process, every served version it does not hold yet; never raises (it runs
    in a listener's or a loader's thread)."""
    from django.db import connection

    from inspection.inference import warm_up_active_models

    try:
        warm_up_active_models(only_new=True)
    except Exception:  # a failed load is retried at the next news or look
        logger.exception("loading the served models failed")
    finally:
        connection.close()  # this thread's own connection


def listen(
    on_change: Callable[[], None] = load_new_versions, *, timeout_s: float = LISTEN_TIMEOUT_S
) -> threading.Thread:
    """Call on_change() in a daemon thread on each announcement, and after timeout_s without
    one; reconnect by itself when Redis goes away. on_change must not raise."""
    url = _redis_url()

    def run() -> None:
        while True:
            try:
                if url is None:
                    time.sleep(timeout_s)
                    on_change()
                    continue
                client = redis.Redis.from_url(
                    url, socket_connect_timeout=5, socket_timeout=timeout_s + 10
                )
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                on_change()  # what changed while this thread was not listening
                looked = time.monotonic()
                while True:
                    news = pubsub.get_message(timeout=timeout_s)
                    # None: the time ran out, or a message that is not news (the subscription's)
                    if news is not None or time.monotonic() - looked >= timeout_s:
                        on_change()
                        looked = time.monotonic()
            except redis.RedisError as exc:
                logger.info("serving news: %s; listening again in a second", exc)
                time.sleep(1.0)

    thread = threading.Thread(target=run, name="loupe-serving-news", daemon=True)
    thread.start()
    return thread
