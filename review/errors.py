from loupe.common.errors import LoupeError


class AlreadyDecided(LoupeError):
    status_code = 409
    code = "already_decided"


class ClaimedByOther(LoupeError):
    status_code = 409
    code = "claimed_by_other"


class UndoNotAllowed(LoupeError):
    status_code = 409
    code = "undo_not_allowed"
