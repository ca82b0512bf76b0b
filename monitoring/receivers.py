"""monitoring's answers to its own services' announcements: a recorded webhook delivery is
sent by a task, which the services may not import (import-linter: services never import tasks)."""

from monitoring import tasks
from monitoring.webhooks import delivery_recorded


def send_delivery(sender, *, delivery_id: int, **kwargs) -> None:
    tasks.enqueue_webhook_delivery(delivery_id)


def connect() -> None:
    delivery_recorded.connect(send_delivery, dispatch_uid="monitoring.webhook_delivery")
