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
