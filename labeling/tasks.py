from celery import shared_task

from labeling import review_labels
from loupe.common.time_limits import time_limits


@shared_task(name="labeling.label_final_decisions", **time_limits("inference"))
def label_final_decisions_task() -> int:
    """Periodic (loupe.periodic): final review decisions become labels."""
    return review_labels.label_final_decisions()
