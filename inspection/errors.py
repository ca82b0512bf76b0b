"""Domain errors of the inspection service; the base lives in loupe.common.errors."""

from loupe.common.errors import LoupeError


class ImageMissing(LoupeError):
    status_code = 400
    code = "image_missing"


class ImageEmpty(LoupeError):
    status_code = 400
    code = "image_empty"


class ImageTooLarge(LoupeError):
    status_code = 413
    code = "image_too_large"


class ImageUnsupported(LoupeError):
    status_code = 415
    code = "image_unsupported"


class ImageCorrupt(LoupeError):
    status_code = 400
    code = "image_corrupt"


class ExternalIdConflict(LoupeError):
    status_code = 409
    code = "external_id_conflict"


class LineRuleBroken(LoupeError):
    status_code = 422
    code = "rule_broken"


class LineChangedMeanwhile(LoupeError):
    status_code = 409
    code = "line_changed"


class DecisionFinal(LoupeError):
    status_code = 409
    code = "undo_not_allowed"


class SerialNotFound(LoupeError):
    status_code = 404
    code = "serial_not_found"


class SerialAmbiguous(LoupeError):
    """Several stations of the line inspected an item of that serial: say which one."""

    status_code = 409
    code = "serial_ambiguous"

    def __init__(self, message: str, *, stations, field: str | None = "station"):
        super().__init__(message, field=field)
        self.stations = list(stations)


class NotAModelAccept(LoupeError):
    """An escape is a defective item the model accepted; this item was not one."""

    status_code = 422
    code = "not_a_model_accept"


class RolloutConflict(LoupeError):
    """A line runs one rollout at a time, and only a running one changes."""

    status_code = 409
    code = "rollout_conflict"
