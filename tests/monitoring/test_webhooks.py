"""Alert webhooks against a real HTTP server: signed, sent after commit, retried after a 500,
never sent twice for one event."""

import hashlib
import hmac
import json
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.utils import timezone

from monitoring import alert_rules, alerts, webhooks
from monitoring.alerts import evaluate_alerts
from monitoring.line_settings import update_line_monitoring
from monitoring.models import AlertMetric, AlertRule, DeliveryState, WebhookDelivery

SECRET = "webhook-secret-1"


class Receiver:
    """An HTTP server in a thread that answers each POST with the next status of `statuses`
    (then 200) and keeps what it got."""

    def __init__(self):
        self.statuses: list[int] = []
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def hooked_line(make_line, station_with_token, receiver, seed):
    line = make_line("hook-line", level="human_only")
    camera, _ = station_with_token(line, "cam-h")
    update_line_monitoring(
        line=line, changed_by="sam", webhook_url=receiver.url, webhook_secret=SECRET
    )
    alert_rules.ensure_default_rules(line)
    AlertRule.objects.filter(line=line).exclude(metric=AlertMetric.REVIEW_BACKLOG).update(
        enabled=False
    )
    AlertRule.objects.filter(line=line, metric=AlertMetric.REVIEW_BACKLOG).update(threshold=1)
    seed(camera, "h1")
    return line


def verified(headers: dict, body: bytes) -> dict:
    """The body, after checking the signature as a receiver would."""
    timestamp = headers["X-Loupe-Timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    assert hmac.compare_digest(headers["X-Loupe-Signature"], "sha256=" + expected.hexdigest())
    return json.loads(body)


def test_an_opened_alert_is_sent_after_commit_signed(
    hooked_line, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        (alert,) = evaluate_alerts()
        assert receiver.requests == []  # nothing before the commit
    assert len(callbacks) == 1
    ((headers, body),) = receiver.requests
    sent = verified(headers, body)
    assert sent["event"] == "alert.opened"
    assert sent["alert"]["id"] == alert.pk and sent["alert"]["line"] == "hook-line"
    assert sent["alert"]["metric"] == "review_backlog" and sent["alert"]["value"] == 1
    delivery = WebhookDelivery.objects.get()
    assert headers["X-Loupe-Delivery"] == str(delivery.pk)
    assert (delivery.state, delivery.attempts, delivery.last_status) == ("delivered", 1, 200)


def test_a_500_is_retried_with_backoff_and_nothing_is_sent_twice(
    hooked_line, receiver, django_capture_on_commit_callbacks
):
    receiver.statuses = [500]
    with django_capture_on_commit_callbacks(execute=True):
        (alert,) = evaluate_alerts()
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 500")
    wait = delivery.next_attempt_at - timezone.now()
    assert timedelta(seconds=25) < wait <= timedelta(seconds=30)

    assert webhooks.send_due_deliveries() == {}  # not due yet
    later = timezone.now() + timedelta(seconds=31)
    assert webhooks.send_due_deliveries(later) == {DeliveryState.DELIVERED: 1}
    assert len(receiver.requests) == 2
    first, second = (verified(h, b) for h, b in receiver.requests)
    assert first == second  # the same event, signed again at its own time

    # the condition lasts, the event was delivered: nothing more is recorded or sent
    with django_capture_on_commit_callbacks(execute=True):
        assert evaluate_alerts() == []
    assert webhooks.record_event(alert, "opened") is None
    assert webhooks.send_due_deliveries(later + timedelta(hours=1)) == {}
    assert WebhookDelivery.objects.count() == 1 and len(receiver.requests) == 2

    with django_capture_on_commit_callbacks(execute=True):
        alerts.acknowledge_alert(alert=alert, user="sam")
    assert [verified(h, b)["event"] for h, b in receiver.requests] == [
        "alert.opened",
        "alert.opened",
        "alert.acknowledged",
    ]


def test_a_delivery_whose_task_was_lost_is_sent_by_the_sweep(hooked_line, receiver):
    (alert,) = evaluate_alerts()  # no commit here: the task never ran, the row waits
    assert receiver.requests == []
    assert webhooks.send_due_deliveries() == {DeliveryState.DELIVERED: 1}
    assert verified(*receiver.requests[0])["alert"]["id"] == alert.pk


def test_an_unreachable_receiver_is_given_up_after_the_last_try(hooked_line, receiver):
    evaluate_alerts()
    receiver.close()
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=webhooks.MAX_ATTEMPTS - 1)
    assert webhooks.attempt_delivery(delivery.pk) == DeliveryState.FAILED
    delivery.refresh_from_db()
    assert delivery.state == "failed" and "ConnectionError" in delivery.last_error
