"""Exceptions of the client. Every one is a `DarkroomError`.

(`ConfigurationError` here means the client lacks what it needs to talk to a server: an API
key, a base URL.)

An API-level error (HTTP 200 with a non-zero `code`) raises the class of its code, carrying the
server's `code`, `message` and `issues`, so callers can catch exactly what they can act on:
a wrong key, a bad input, an empty balance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from darkroom.errors import (
    ERRORS_BY_CODE,
    ApiError,
    AuthenticationError,
    ConfigurationError,
    DarkroomError,
    InsufficientBalance,
    InternalError,
    InvalidRequest,
    MethodNotFound,
    ModelNotAllowed,
    Overloaded,
    SensitiveContent,
    TaskNotFound,
    UnsafePrompt,
    error_for,
)

if TYPE_CHECKING:
    from darkroom.client.models import Task


# The base and the errors answered with a code are Darkroom's own tree (darkroom/errors.py):
# the server raises them and the client raises them again from an answer's code.
__all__ = [
    "ApiError",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectionFailed",
    "DarkroomError",
    "DownloadError",
    "ERRORS_BY_CODE",
    "InsufficientBalance",
    "InternalError",
    "InvalidRequest",
    "MethodNotFound",
    "ModelNotAllowed",
    "Overloaded",
    "SensitiveContent",
    "TaskFailed",
    "TaskNotFound",
    "UnexpectedResponse",
    "UnsafePrompt",
    "WaitTimeout",
    "error_for",
]


# -- errors of the transport and of waiting ---------------------------------------------------


class ConnectionFailed(DarkroomError):
    """The server could not be reached, or the connection broke; `sent` tells whether the
    request may have reached the server (a create that may have been queued is not retried)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class UnexpectedResponse(DarkroomError):
    """An answer that is not the API's JSON envelope: a proxy's error page, a 5xx, a 404 at a
    base URL that is not a Darkroom (or hosted-service) endpoint."""

    def __init__(self, message: str, *, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class DownloadError(DarkroomError):
    """The image link did not serve the image (it expired, or the task has no image)."""


class TaskFailed(DarkroomError):
    """The task ended `failed`; `message` is the server's reason, `task` the last answer."""

    def __init__(self, task: Task) -> None:
        super().__init__(task.message or f"Task {task.id} failed.")
        self.task = task


class WaitTimeout(DarkroomError, TimeoutError):
    """The task did not finish within the timeout; it may still finish later."""

    def __init__(self, task: Task, timeout: float) -> None:
        super().__init__(
            f"Task {task.id} is still {task.status} after {timeout:g} s; "
            f"ask for its result later or wait longer."
        )
        self.task = task
        self.timeout = timeout
