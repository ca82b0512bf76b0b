"""A task's late acknowledgement that reaches a lost broker connection (Redis restarted while
the task ran) must not take the worker down, nor lose the task: the message comes back from
Redis's unacked set after the visibility timeout. Its own redis-server, really stopped and
started; kombu as the worker uses it. The worker-level fault is tests/faults/test_faults.py's
test_redis_restarted, where this race happens only sometimes: there kombu raised
AttributeError ('NoneType' object has no attribute 'hostname') from the acknowledgement, in
the event loop, and the worker exited (CI, 2026-12-01)."""

import logging
import time
import uuid

import kombu
import pytest

from loupe.worker_consumer import ReconnectingConsumer, skip_if_connection_closed
from tests.faults.processes import RedisServer

pytestmark = pytest.mark.faults

# short, so the test sees the unacknowledged message come back
TRANSPORT_OPTIONS = {"visibility_timeout": 1}
LOG = logging.getLogger("test")


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _received_then_broker_lost(redis_server, queue_name: str):
    """A message taken (unacknowledged, as a running task's is), then Redis away while the
    consumer cleans up the connection, as Celery's consumer does: collect, then close."""
    connection = kombu.Connection(redis_server.url, transport_options=TRANSPORT_OPTIONS)
    queue = connection.SimpleQueue(queue_name)
    queue.put({"item": 7})
    message = queue.get(timeout=5)
    redis_server.stop(keep_data=True)
    for clean_up in (connection.collect, connection.close):
        try:
            clean_up()
        except Exception:  # noqa: BLE001 - Celery ignores these too; Redis is away
            pass
    redis_server.start()
    return message, connection.connection_errors


def test_the_guarded_ack_is_skipped_and_the_message_comes_back(redis_server, caplog):
    name = f"q-{uuid.uuid4().hex}"
    message, errors = _received_then_broker_lost(redis_server, name)

    with caplog.at_level(logging.WARNING, logger="loupe.worker_consumer"):
        skip_if_connection_closed(message.ack_log_error)(LOG, errors)
    assert "broker connection was lost" in caplog.text

    with kombu.Connection(redis_server.url, transport_options=TRANSPORT_OPTIONS) as connection:
        queue = connection.SimpleQueue(name)
        time.sleep(1.5)  # past the visibility timeout
        connection.default_channel.qos.restore_visible(num=10)  # what a worker does
        again = queue.get(timeout=10)
        assert again.payload == {"item": 7}
        again.ack()
        queue.close()


def test_the_guarded_ack_acknowledges_on_an_open_connection(redis_server):
    with kombu.Connection(redis_server.url, transport_options=TRANSPORT_OPTIONS) as connection:
        queue = connection.SimpleQueue(f"q-{uuid.uuid4().hex}")
        queue.put({"item": 8})
        message = queue.get(timeout=5)
        skip_if_connection_closed(message.ack_log_error)(LOG, connection.connection_errors)
        assert message.acknowledged
        time.sleep(1.5)
        connection.default_channel.qos.restore_visible(num=10)
        with pytest.raises(queue.Empty):
            queue.get(timeout=1)  # acknowledged for good: nothing comes back
        queue.close()


def test_the_worker_consumer_sends_every_ack_and_reject_through_the_guard():
    # Celery's task handler schedules each message's ack and reject with call_soon_ack
    scheduled = []

    class Hub:
        def call_soon(self, callback):
            scheduled.append(callback)
            return callback

    consumer = ReconnectingConsumer.__new__(ReconnectingConsumer)
    consumer.hub = Hub()

    class Message:
        def ack_log_error(self, logger, errors):
            raise AssertionError("acknowledged on a closed connection")

        channel = None  # the connection is gone
        delivery_tag = "tag-1"

    consumer.call_soon_ack(Message().ack_log_error, LOG, ())
    scheduled[0]()  # skipped, not raised
