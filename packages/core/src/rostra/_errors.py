"""Rostra's one error tree.

Rules:
- Every failure a caller can see is a ``RostraError`` subclass with a fixed ``status_code``.
- The message says what went wrong and what to do about it. It never holds a password or a SASL payload.
- Transports translate their library's exceptions into these at their boundary; nothing else leaks.
- ``local`` is True for errors raised before anything was sent (bad input, wrong state): the session is unchanged.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AlreadyConnectedError",
    "AuthenticationError",
    "ClientClosedError",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "NotConnectedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ReconnectingError",
    "RequestTimeoutError",
    "RostraError",
    "ServerError",
    "UnreachableError",
]


class RostraError(Exception):
    """The root of every error Rostra raises."""

    status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "Rostra failed"
    local: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        super().__init__(self.message)

    def to_dict(self) -> dict[str, object]:
        """The documented error response: ``{"statusCode": N, "message": TEXT}``."""
        return {"statusCode": self.status_code, "message": self.message}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code}, message={self.message!r})"


class InvalidInputError(RostraError):
    """400: an argument broke a documented rule; nothing was sent."""

    status_code = 400
    default_message = "Invalid input: check the argument against the documented rules"
    local = True


class ClientClosedError(RostraError):
    """400: the Client was closed; create a new one."""

    status_code = 400
    default_message = "This Client is closed: create a new rostra.Client"
    local = True


class AuthenticationError(RostraError):
    """401: the server refused the credentials."""

    status_code = 401
    default_message = "Authentication failed: check the username and password that register() returned"


class NotConnectedError(RostraError):
    """401: the call needs a connected session."""

    status_code = 401
    default_message = "Not connected: call connect(username, password) first"
    local = True


class ForbiddenError(RostraError):
    """403: the server does not allow this to this user (e.g. last seen of a non-contact)."""

    status_code = 403
    default_message = "Forbidden: this needs a mutual contact (add_contact on both sides)"


class NotFoundError(RostraError):
    """404: the thing asked for does not exist."""

    status_code = 404
    default_message = "Not found"


class RequestTimeoutError(RostraError):
    """408: no answer in time; the session stays usable, the call may be retried."""

    status_code = 408
    default_message = "Timed out waiting for the server: retry, or raise the timeout option"


class ConflictError(RostraError):
    """409: the thing exists already (e.g. a registered identifier)."""

    status_code = 409
    default_message = "Conflict: it exists already"


class AlreadyConnectedError(ConflictError):
    """409: connect() on a session that is already connected."""

    default_message = "Already connected: call logout() before connecting again"
    local = True


class PayloadTooLargeError(RostraError):
    """413: a payload (an image) exceeds the configured limit; nothing was sent."""

    status_code = 413
    default_message = "Too large: shrink the payload or raise the limit option"
    local = True


class RateLimitedError(RostraError):
    """429: the server throttled the request; retry later."""

    status_code = 429
    default_message = "Rate limited by the server: wait and retry"


class ServerError(RostraError):
    """500: the server failed or answered something Rostra cannot use."""

    status_code = 500
    default_message = "The server failed to handle the request"


class UnreachableError(RostraError):
    """503: the server cannot be reached, or the connection was lost."""

    status_code = 503
    default_message = "Server unreachable: check the server URL and that the server is running"


class ReconnectingError(UnreachableError):
    """503: the connection was lost and the Client is restoring it; nothing was sent. Retry after CONNECTED."""

    default_message = "The connection to the server was lost and is being restored: retry once CONNECTED is announced"
    local = True
