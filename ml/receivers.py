"""ml's answers to what lower apps announce (their signals), so they never import ml."""

from labeling.signals import correction_saved
from ml import tasks


def check_policy_after_correction(sender, *, line_id: int, **kwargs) -> None:
    """A correction may make the line's retraining due: ask on the training queue."""
    tasks.enqueue_policy_check(line_id)


def connect() -> None:
    correction_saved.connect(check_policy_after_correction, dispatch_uid="ml.policy_check")
