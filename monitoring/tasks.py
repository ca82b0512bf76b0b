from celery import shared_task

from loupe.common.time_limits import time_limits
from monitoring import aggregation, drift


# Periodic (loupe.periodic), on the datasets queue: its queries over a line's recent history
# never run where stations wait
@shared_task(name="monitoring.aggregate", acks_late=False, **time_limits("datasets"))
def aggregate_monitoring_task() -> dict:
    return aggregation.aggregate_recent().as_dict()


# Periodic (loupe.periodic), on the datasets queue: a model's first reference takes seconds
@shared_task(name="monitoring.check_drift", acks_late=False, **time_limits("datasets"))
def check_drift_task() -> dict:
    return drift.check_drift().as_dict()
