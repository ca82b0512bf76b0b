import logging

from celery import shared_task

from loupe.common.time_limits import time_limits
from monitoring import aggregation, alerts, drift, rollout_gate, webhooks


# Periodic (loupe.periodic), on the datasets queue: its queries over a line's recent history
# never run where stations wait
@shared_task(name="monitoring.aggregate", acks_late=False, **time_limits("datasets"))
def aggregate_monitoring_task() -> dict:
    return aggregation.aggregate_recent().as_dict()


# Periodic (loupe.periodic), on the datasets queue: a model's first reference takes seconds
@shared_task(name="monitoring.check_drift", acks_late=False, **time_limits("datasets"))
def check_drift_task() -> dict:
    return drift.check_drift().as_dict()


# Periodic (loupe.periodic), on the datasets queue: each line's rules against its figures
@shared_task(name="monitoring.evaluate_alerts", acks_late=False, **time_limits("datasets"))
def evaluate_alerts_task() -> list[int]:
    return [alert.pk for alert in alerts.evaluate_alerts()]


# Periodic (loupe.periodic), on the datasets queue: a challenger in breach is rolled back, one
# the gate allows is stepped on where the line drives its rollouts itself
@shared_task(name="monitoring.check_rollouts", acks_late=False, **time_limits("datasets"))
def check_rollouts_task() -> list[dict]:
    return rollout_gate.check_rollouts()


# Sent after an alert event commits (monitoring.receivers); a failure waits for its retry time
# in its row, and the sweep below sends it then: nothing is held in the broker
@shared_task(name="monitoring.deliver_webhook", acks_late=True, **time_limits("datasets"))
def deliver_webhook_task(delivery_id: int) -> str:
    return webhooks.attempt_delivery(delivery_id)


# Periodic (loupe.periodic): deliveries due for a retry, or whose task was lost
@shared_task(name="monitoring.send_due_webhooks", acks_late=False, **time_limits("datasets"))
def send_due_webhooks_task() -> dict:
    return webhooks.send_due_deliveries()


def enqueue_webhook_delivery(delivery_id: int) -> None:
    from datasets.limits import datasets_queue

    try:
        deliver_webhook_task.apply_async(args=[delivery_id], queue=datasets_queue())
    except Exception:  # the broker is down: the periodic sweep sends it
        logging.getLogger(__name__).warning("webhook delivery %s left to the sweep", delivery_id)
