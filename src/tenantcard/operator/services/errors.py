"""Domain errors of the operator services. The API maps each class to one HTTP status, once (api/errors.py).

Messages name what went wrong, never a key, credential or one-time code.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every operator domain error; ``code`` is the stable machine-readable error code."""

    code = "operator_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidRequest(OperatorError):
    code = "invalid_request"


class Unauthenticated(OperatorError):
    code = "unauthenticated"


class Forbidden(OperatorError):
    code = "forbidden"


class NotFound(OperatorError):
    code = "not_found"


class Conflict(OperatorError):
    code = "conflict"


class RateLimited(OperatorError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeviceBusy(OperatorError):
    """Another operation holds the device's lock."""

    code = "device_busy"


class DeviceUnavailable(OperatorError):
    """The device did not answer (unreachable, timed out) or refused the operator's secure channel."""

    code = "device_unavailable"
