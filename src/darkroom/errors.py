"""The one exception tree, and the media API's table of codes.

    DarkroomError                   every error Darkroom raises on purpose
    ├── ConfigurationError          a setting or catalog entry that cannot work: a node stops
    │   │                           at start naming it (exit 2), a task fails without retry
    │   └── CatalogError            the catalog file cannot be used as written
    ├── GenerationError             this task cannot be made and retrying will not help; its
    │   │                           message is the task's `message`
    │   └── TaskCanceled            its owner canceled it
    └── ApiError                    an answer with a non-zero `code`: raised by the server's
        │                           routes, raised again by the client when it reads one
        ├── InternalError           1
        ├── AuthenticationError     2
        ├── InvalidRequest          3   (with `issues`)
        ├── TaskNotFound            4
        ├── InsufficientBalance     5
        ├── Overloaded              6
        ├── ModelNotAllowed         7
        ├── MethodNotFound          99
        ├── SensitiveContent        1001
        └── UnsafePrompt            1002

The client adds its transport and waiting errors under `DarkroomError` (client/errors.py).
Anything else that escapes is a bug: the server logs it and answers code 1.
"""

from __future__ import annotations

import enum
from typing import Any


class Code(enum.IntEnum):
    """The media API's codes (spec: "Errors"); 0 is success."""

    OK = 0
    INTERNAL = 1
    BAD_KEY = 2
    INVALID = 3
    NOT_FOUND = 4
    NO_BALANCE = 5
    OVERLOADED = 6
    MODEL_NOT_ALLOWED = 7
    NO_METHOD = 99
    SENSITIVE_CONTENT = 1001
    UNSAFE_PROMPT = 1002


# The hosted service's own sentence for each code (spec: "Errors"): every message of an answer
# with that code begins with it, because its clients match words in it. Darkroom's specifics
# follow it after a space.
SENTENCES: dict[int, str] = {
    Code.INTERNAL: "Internal server error.",
    Code.BAD_KEY: "Invalid token, check if authorization header has a valid value.",
    Code.INVALID: "Invalid input, check schema issues.",
    Code.NOT_FOUND: "Record not found.",
    Code.NO_BALANCE: "Insufficient balance, check account balance.",
    Code.OVERLOADED: "Service on heavy load. Try again later.",
    Code.MODEL_NOT_ALLOWED: "Has organization restrict for this model.",
    Code.NO_METHOD: "API method not found, please check url you call.",
    Code.SENSITIVE_CONTENT: (
        "Sensitive content has been detected in your request or uploaded files."
    ),
    Code.UNSAFE_PROMPT: "Your prompt did not pass the content safety check.",
}


def worded(code: int, details: str = "") -> str:
    """The message of an answer with this code: its sentence, then the details after a space."""
    return " ".join(part for part in (SENTENCES.get(code, ""), details) if part)


# The message of a task its owner canceled, as every part of Darkroom words it.
CANCELED_MESSAGE = "canceled"


class DarkroomError(Exception):
    """The root of every error Darkroom raises on purpose."""

    code: int | None = None

    def __init__(self, message: str, *, issues: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.issues = issues


class ConfigurationError(DarkroomError):
    """A setting or a catalog entry that cannot work (no credentials, no source, a pipeline
    the engine does not support). Retrying does not help; an operator must change it."""


class CatalogError(ConfigurationError, ValueError):
    """The catalog file cannot be used as written."""


class GenerationError(DarkroomError):
    """A failure that retrying will not fix (a blocked prompt, an unusable reference image).
    Its message is shown to the user as the task's `message`."""


class TaskCanceled(GenerationError):
    """The task's owner canceled it: the one typed outcome every engine and the worker use."""

    def __init__(self) -> None:
        super().__init__(CANCELED_MESSAGE)


# -- answers with a code ----------------------------------------------------------------------


class ApiError(DarkroomError):
    """An answer with a non-zero `code`; a subclass names each known code.

    Raised with `details` (what exactly is wrong), its `message` is the code's sentence
    followed by them, so that no route words a sentence itself. Raised again from an answer
    (`error_for`), the `received` message is kept as the server sent it, never prefixed twice.
    """

    def __init__(
        self,
        details: str = "",
        *,
        code: int | None = None,
        issues: list[dict[str, Any]] | None = None,
        received: str | None = None,
    ) -> None:
        if code is not None:
            self.code = code
        message = worded(self.code or Code.INTERNAL, details) if received is None else received
        super().__init__(message, issues=issues)

    def envelope(self) -> dict[str, Any]:
        """The answer's body: `code`, `message` and, for code 3, `issues`."""
        body: dict[str, Any] = {"code": int(self.code or Code.INTERNAL), "message": self.message}
        if self.issues is not None:
            body["issues"] = self.issues
        return body


class InternalError(ApiError):
    code = Code.INTERNAL


class AuthenticationError(ApiError):
    """Missing, unknown or revoked API key."""

    code = Code.BAD_KEY


class InvalidRequest(ApiError):
    """Invalid input; `issues` lists each problem with its `path`, `expected` and `message`."""

    code = Code.INVALID


class TaskNotFound(ApiError):
    """No such task for this key."""

    code = Code.NOT_FOUND


class InsufficientBalance(ApiError):
    code = Code.NO_BALANCE


class Overloaded(ApiError):
    """The server is busy (queue full) or the key is over one of its limits; `retry_after`
    (seconds), when known, is sent as the Retry-After header."""

    code = Code.OVERLOADED

    def __init__(self, details: str = "", *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(details, **kwargs)
        self.retry_after = retry_after


class ModelNotAllowed(ApiError):
    code = Code.MODEL_NOT_ALLOWED


class MethodNotFound(ApiError):
    """No such API method (unknown path or HTTP method under /v1/)."""

    code = Code.NO_METHOD


class SensitiveContent(ApiError):
    """Sensitive content in the request (negative prompt, image links)."""

    code = Code.SENSITIVE_CONTENT


class UnsafePrompt(ApiError):
    """The prompt failed the content safety check."""

    code = Code.UNSAFE_PROMPT


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
    """The exception for an answer's code, carrying the answer's message as it was sent; an
    unknown code is a plain ApiError carrying it."""
    cls = ERRORS_BY_CODE.get(code)
    if cls is None:
        return ApiError(code=code, issues=issues, received=message)
    return cls(issues=issues, received=message)
