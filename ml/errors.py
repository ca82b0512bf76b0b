"""Domain errors of the model registry and the retraining pipeline (mapped to HTTP like the
inspection service's: 409 for a conflict with the current state)."""

from loupe.common.errors import LoupeError


class NotACandidate(LoupeError):
    status_code = 409
    code = "not_a_candidate"


class ActiveModelChanged(LoupeError):
    """The line's active model is not the one the caller saw (a double click, or a colleague)."""

    status_code = 409
    code = "active_model_changed"


class NothingToRollBack(LoupeError):
    status_code = 409
    code = "nothing_to_roll_back"


class RunInProgress(LoupeError):
    status_code = 409
    code = "run_in_progress"


class RunNotRetryable(LoupeError):
    status_code = 409
    code = "run_not_retryable"
