from celery import shared_task

from loupe.common.time_limits import time_limits
from monitoring import aggregation


# Periodic (loupe.periodic), on the datasets queue: its queries over a line's recent history
# never run where stations wait
@shared_task(name="monitoring.aggregate", acks_late=False, **time_limits("datasets"))
def aggregate_monitoring_task() -> dict:
    return aggregation.aggregate_recent().as_dict()
