"""Domain errors of the inspection service. loupe.api_errors maps them to HTTP answers."""


class LoupeError(Exception):
    """An error a client can act on: `code` is stable, the message says what was wrong."""

    status_code = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(LoupeError):
    status_code = 400
    code = "invalid_input"


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
