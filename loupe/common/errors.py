"""The error base: domain errors that a client can act on. loupe.common.api_errors and
loupe.common.json_views turn them into JSON answers."""


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
