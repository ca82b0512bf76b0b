from inspection.errors import LoupeError


class AlreadyDecided(LoupeError):
    status_code = 409
    code = "already_decided"
