"""Exceptions of the client. Every one is a `DarkroomError`.

An API-level error (HTTP 200 with a non-zero `code`) raises the class of its code, carrying the
server's `code`, `message` and `issues`, so callers can catch exactly what they can act on:
a wrong key, a bad input, an empty balance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from darkroom.client.models import Task


class DarkroomError(Exception):
    """The base of every error this client raises."""

    code: int | None = None

    def __init__(self, message: str, *, issues: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.issues = issues


class ConfigurationError(DarkroomError):
    """The client lacks what it needs to talk to a server (an API key, a base URL)."""


# -- errors the API answers with a code ------------------------------------------------------


class ApiError(DarkroomError):
    """The server answered with a non-zero `code`; a subclass names each known code."""

    def __init__(
        self, message: str, *, code: int | None = None, issues: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, issues=issues)
        if code is not None:
            self.code = code


class InternalError(ApiError):
    code = 1


class AuthenticationError(ApiError):
    """Missing, unknown or revoked API key."""

    code = 2


class InvalidRequest(ApiError):
    """Invalid input; `issues` lists each problem with its `path`, `expected` and `message`."""

    code = 3


class TaskNotFound(ApiError):
    """No such task for this key."""

    code = 4


class InsufficientBalance(ApiError):
    code = 5


class Overloaded(ApiError):
    """The server is busy (queue full, rate limit); retried before it is raised."""

    code = 6


class ModelNotAllowed(ApiError):
    code = 7


class MethodNotFound(ApiError):
    """No such API method (unknown path or HTTP method under /v1/)."""

    code = 99


class SensitiveContent(ApiError):
    """Sensitive content in the request (negative prompt, image links)."""

    code = 1001


class UnsafePrompt(ApiError):
    """The prompt failed the content safety check."""

    code = 1002


ERRORS_BY_CODE: dict[int, type[ApiError]] = {
    cls.code: cls
    for cls in (
        InternalError,
        AuthenticationError,
        InvalidRequest,
        TaskNotFound,
        InsufficientBalance,
        Overloaded,
        ModelNotAllowed,
        MethodNotFound,
        SensitiveContent,
        UnsafePrompt,
    )
}


def error_for(code: int, message: str, issues: list[dict[str, Any]] | None = None) -> ApiError:
    """The exception for an answer's code; a code this client does not know is a plain ApiError."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return ApiError(message, code=code, issues=issues)
    return cls(message, issues=issues)


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
