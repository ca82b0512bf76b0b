"""Alert events for a line's webhook: recorded with the event, sent after commit, signed,
retried with backoff, never sent twice for one event.

The webhook is per line (LineMonitoring.webhook_url and webhook_secret): lines belong to
different teams and plants, each with its own chat room or pager, and a supervisor can set it
on the rules page without a restart. The only writer of WebhookDelivery.

- record_event writes one WebhookDelivery per alert and event (a unique constraint: a retried
  evaluation or a double click records nothing new) in the caller's transaction, and after
  commit announces it (`delivery_recorded`); monitoring.receivers sends the delivery task to
  the datasets queue. A broker that is down loses nothing: the row stays pending and the
  periodic sweep (`send_due_deliveries`) sends it.
- attempt_delivery claims the row with a conditional UPDATE that pushes next_attempt_at past
  the request's timeout (a lease), so the task and the sweep never send it at once; a 2xx
  marks it delivered, anything else schedules the next try 30 s * 2^(attempts-1) later (at
  most an hour) and gives up after MAX_ATTEMPTS (about 10 hours).
- Each request carries X-Loupe-Timestamp (unix seconds) and X-Loupe-Signature:
  "sha256=" + HMAC-SHA256(secret, "<timestamp>.<body>") in hex, so a receiver checks both
  that Loupe sent it and that it is fresh; X-Loupe-Delivery lets it drop a repeat should a
  2xx get lost on the way back.
"""

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime, timedelta

import requests
from django.db import IntegrityError, transaction
from django.dispatch import Signal
from django.utils import timezone

from monitoring.line_settings import settings_for
from monitoring.models import Alert, DeliveryState, WebhookDelivery

logger = logging.getLogger(__name__)

# sent after commit with delivery_id: monitoring.receivers sends the delivery task
delivery_recorded = Signal()

TIMEOUT_S = 5.0
LEASE = timedelta(seconds=30)
FIRST_RETRY_S = 30
MAX_RETRY_S = 3600
MAX_ATTEMPTS = 12
SWEEP_BATCH = 100


def payload(alert: Alert, event: str) -> dict:
    return {
        "event": f"alert.{event}",
        "alert": {
            "id": alert.pk,
            "line": alert.line.name,
            "station": alert.station.name if alert.station_id else None,
            "metric": alert.metric,
            "state": alert.state,
            "value": alert.value,
            "threshold": alert.threshold,
            "message": alert.message,
            "opened_at": alert.opened_at.isoformat(),
            "acknowledged_at": alert.acknowledged_at and alert.acknowledged_at.isoformat(),
            "acknowledged_by": alert.acknowledged_by or None,
            "resolved_at": alert.resolved_at and alert.resolved_at.isoformat(),
            "resolved_by": alert.resolved_by or None,
        },
    }


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The X-Loupe-Signature header's value."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def record_event(alert: Alert, event: str) -> WebhookDelivery | None:
    """Record the event's delivery if the alert's line has a webhook; None if it has none or
    the event was recorded already. Call inside the transaction that changes the alert."""
    config = settings_for(alert.line)
    if not config.webhook_url:
        return None
    now = timezone.now()
    try:
        with transaction.atomic():
            delivery = WebhookDelivery.objects.create(
                alert=alert,
                event=event,
                url=config.webhook_url,
                body=json.dumps(payload(alert, event), sort_keys=True),
                next_attempt_at=now,
            )
    except IntegrityError:
        return None
    transaction.on_commit(
        lambda: delivery_recorded.send(sender=WebhookDelivery, delivery_id=delivery.pk)
    )
    return delivery


def retry_delay(attempts: int) -> timedelta:
    return timedelta(seconds=min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** max(0, attempts - 1)))


def attempt_delivery(delivery_id: int, now: datetime | None = None) -> str:
    """Send the delivery if it is due and no one else is sending it; its state afterwards
    ("skipped" when it was not due, delivered or claimed). Safe to repeat."""
    now = now or timezone.now()
    claimed = WebhookDelivery.objects.filter(
        pk=delivery_id, state=DeliveryState.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + LEASE)
    if claimed != 1:
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("alert__line").get(pk=delivery_id)
    secret = settings_for(delivery.alert.line).webhook_secret
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Loupe-webhook",
        "X-Loupe-Event": f"alert.{delivery.event}",
        "X-Loupe-Delivery": str(delivery.pk),
        "X-Loupe-Timestamp": str(timestamp),
        "X-Loupe-Signature": sign(secret, timestamp, body),
    }
    status, error = None, ""
    try:
        response = requests.post(delivery.url, data=body, headers=headers, timeout=TIMEOUT_S)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    attempts = delivery.attempts + 1
    update = {"attempts": attempts, "last_status": status, "last_error": error}
    if not error:
        update.update(state=DeliveryState.DELIVERED, delivered_at=timezone.now())
    elif attempts >= MAX_ATTEMPTS:
        update.update(state=DeliveryState.FAILED)
        logger.warning(
            "webhook delivery %s given up after %s tries: %s", delivery_id, attempts, error
        )
    else:
        update.update(next_attempt_at=now + retry_delay(attempts))
    WebhookDelivery.objects.filter(pk=delivery_id).update(**update)
    return update.get("state", DeliveryState.PENDING)


def due_deliveries(now: datetime | None = None) -> list[int]:
    return list(
        WebhookDelivery.objects.filter(
            state=DeliveryState.PENDING, next_attempt_at__lte=now or timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )


def send_due_deliveries(now: datetime | None = None) -> dict:
    """The periodic sweep: attempt every due delivery (a retry, or one whose task was lost)."""
    states: dict[str, int] = {}
    for delivery_id in due_deliveries(now):
        state = attempt_delivery(delivery_id, now)
        states[state] = states.get(state, 0) + 1
    return states
