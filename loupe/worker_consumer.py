"""The Celery worker's consumer, made to come back by itself after a broker restart.

Settings name it (CELERY_WORKER_CONSUMER); tests/faults/test_faults.py restarts Redis under
load and holds the worker to it. Two changes to Celery's consumer:

- kombu can raise AttributeError while closing the lost connection: a channel that still
  holds unacknowledged messages (a task was running) tries to restore them through a
  transport whose client the consumer's own clean-up has already dropped. Celery treats that
  as unrecoverable and the worker exits (or, in older versions, stops consuming): celery
  issues 8030, 8091, 9054, 10205 and 10302. The lost connection is closed anyway; the
  messages stay in Redis's unacked set and come back after the visibility timeout, and the
  reconnect goes on.
- Reconnection is tried every second, not 2, 4, ... up to 30 s apart, so the worker takes
  tasks again within about a second of the broker's return, however long it was away.
"""

import functools
import logging

from celery.worker.consumer import Consumer

logger = logging.getLogger(__name__)

RECONNECT_INTERVALS = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.0}


class ReconnectingConsumer(Consumer):
    def ensure_connected(self, conn):
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)

    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            logger.warning(
                "closing the lost broker connection failed inside kombu; reconnecting anyway "
                "(unacknowledged tasks return after the visibility timeout)",
                exc_info=True,
            )
