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
- A task that was running when the connection dropped finishes after the reconnect, and its
  late acknowledgement then goes to the old, closed connection: kombu raises AttributeError
  from inside the event loop, and the worker exits (seen in CI under tests/faults). Such an
  acknowledgement is skipped with a warning instead: the message is still in Redis's unacked
  set, comes back after the visibility timeout, and finds its item routed (predictions are
  idempotent).
- Reconnection is tried every second, not 2, 4, ... up to 30 s apart, so the worker takes
  tasks again within about a second of the broker's return, however long it was away.
"""

import functools
import logging

from celery.worker.consumer import Consumer

logger = logging.getLogger(__name__)

RECONNECT_INTERVALS = {"interval_start": 0.5, "interval_step": 0.5, "interval_max": 1.0}


def _connection_closed(message) -> bool:
    # closing a kombu connection detaches its channels from the transport and drops the
    # transport's client; after a broker fault either may have happened first
    channel = message.channel
    transport = channel.connection if channel is not None else None
    return transport is None or transport.client is None


def skip_if_connection_closed(acknowledge):
    """Wrap a message's ack_log_error or reject_log_error so that, once the connection the
    message came on is closed, it logs and returns instead of raising inside kombu."""
    message = getattr(acknowledge, "__self__", None)
    if message is None:  # not a message's own method: nothing to guard
        return acknowledge

    @functools.wraps(acknowledge)
    def acknowledge_on_open_connection(*args, **kwargs):
        # a closed kombu connection drops its transport's client; the hub runs acks and the
        # consumer's clean-up in one thread, so this cannot change under us
        if _connection_closed(message):
            logger.warning(
                "not acknowledging task message %s: its broker connection was lost; it is "
                "delivered again after the visibility timeout",
                message.delivery_tag,
            )
            return None
        return acknowledge(*args, **kwargs)

    return acknowledge_on_open_connection


class ReconnectingConsumer(Consumer):
    def ensure_connected(self, conn):
        conn.ensure_connection = functools.partial(conn.ensure_connection, **RECONNECT_INTERVALS)
        return super().ensure_connected(conn)

    def call_soon_ack(self, p, *args, **kwargs):
        return super().call_soon_ack(skip_if_connection_closed(p), *args, **kwargs)

    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            logger.warning(
                "closing the lost broker connection failed inside kombu; reconnecting anyway "
                "(unacknowledged tasks return after the visibility timeout)",
                exc_info=True,
            )
