"""Errors on the OpenAI paths, in OpenAI's shape and with its HTTP statuses.

The official SDKs raise their typed exceptions from the status alone (400 BadRequestError, 401
AuthenticationError, 404 NotFoundError, 429 RateLimitError, 5xx InternalServerError, any other
APIStatusError) and read `error.message`, `error.type`, `error.param` and `error.code` from
`{"error": {...}}`. The media API answers the same failures with HTTP 200 and a code, so the
shared checks (key, body, model, balance, queue) keep raising `darkroom.errors` classes and this
module translates them at one boundary: `OpenAIRoute`, the route class of the OpenAI router,
wraps each of its routes (dependencies included), so that no other path changes its envelope.

What is never retried: the SDKs retry 429 and 5xx twice by default, which for a 504 would queue
(and charge) the same images again while the first ones are still being made; such answers carry
`x-should-retry: false`, a header the SDKs obey.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from typing import Any

import structlog
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from darkroom.errors import SENTENCES, ApiError, Code, Overloaded

log = structlog.get_logger("darkroom.api")

# A media API code: the HTTP status, OpenAI's `type` and `code` (the values OpenAI itself sends
# where it has one). Insufficient balance is 402 rather than OpenAI's 429 "insufficient_quota":
# the SDKs retry a 429, and no retry can make a balance enough.
STATUSES: dict[int, tuple[int, str, str | None]] = {
    Code.INTERNAL: (500, "server_error", None),
    Code.BAD_KEY: (401, "invalid_request_error", "invalid_api_key"),
    Code.INVALID: (400, "invalid_request_error", "invalid_value"),
    Code.NOT_FOUND: (404, "invalid_request_error", "not_found"),
    Code.NO_BALANCE: (402, "insufficient_quota", "insufficient_quota"),
    Code.OVERLOADED: (429, "requests", "rate_limit_exceeded"),
    Code.MODEL_NOT_ALLOWED: (404, "invalid_request_error", "model_not_found"),
    Code.NO_METHOD: (404, "invalid_request_error", "unknown_url"),
    Code.SENSITIVE_CONTENT: (400, "invalid_request_error", "content_policy_violation"),
    Code.UNSAFE_PROMPT: (400, "invalid_request_error", "content_policy_violation"),
}
# The media API's field names, as an OpenAI client sent them.
PARAMS = {"images": "image", "image": "image", "ar": "size", "aspect_ratio": "size"}
INTERNAL_MESSAGE = "The server had an error while processing your request; please try again."


class OpenAIError(Exception):
    """An answer only the OpenAI paths give: a status and fields of OpenAI's own."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry: bool = True,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.retry = param, code, retry
        self.retry_after = retry_after


def invalid(message: str, param: str | None) -> OpenAIError:
    return OpenAIError(400, message, param=param, code="invalid_value")


def model_not_found(model: str) -> OpenAIError:
    message = f"The model `{model}` does not exist or you do not have access to it."
    return OpenAIError(404, message, param="model", code="model_not_found")


def error_response(error: OpenAIError) -> JSONResponse:
    body = {"message": error.message, "type": error.type, "param": error.param, "code": error.code}
    headers = {} if error.retry else {"x-should-retry": "false"}
    if error.retry_after is not None:  # the SDKs wait this long before their retry
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    return JSONResponse({"error": body}, status_code=error.status, headers=headers)


def translated(exc: Exception) -> OpenAIError:
    """The OpenAI answer for any exception a route raised."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, ApiError):
        return _from_api_error(exc)
    if isinstance(exc, RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return invalid(str(first.get("msg", "The request is not valid.")), param)
    log.exception("internal error", exc_info=exc)
    return OpenAIError(500, INTERNAL_MESSAGE, type="server_error")


def _from_api_error(exc: ApiError) -> OpenAIError:
    status, kind, code = STATUSES.get(int(exc.code or Code.INTERNAL), STATUSES[Code.INTERNAL])
    if exc.issues:
        return OpenAIError(
            status, _issues_text(exc.issues), type=kind, param=_param(exc.issues[0]), code=code
        )
    retry_after = exc.retry_after if isinstance(exc, Overloaded) else None
    return OpenAIError(status, _details(exc), type=kind, code=code, retry_after=retry_after)


def _details(exc: ApiError) -> str:
    """The message without the hosted service's sentence, which names its own schema and
    headers; what follows it says what is wrong in Darkroom's words."""
    sentence = SENTENCES.get(int(exc.code or Code.INTERNAL), "")
    rest = exc.message.removeprefix(sentence).strip()
    return rest or exc.message


def _issues_text(issues: list[dict[str, Any]]) -> str:
    return "; ".join(
        f"{_param(issue) or 'body'}: {issue.get('message', 'is not valid')}" for issue in issues
    )


def _param(issue: dict[str, Any]) -> str | None:
    path = [str(part) for part in issue.get("path", [])]
    if not path:
        return None
    path[0] = PARAMS.get(path[0], path[0])
    return ".".join(path)


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class OpenAIRoute(APIRoute):
    """A route whose every failure, from its dependencies (the key) to its answer, is answered
    in OpenAI's shape; a client that left is answered with nothing, as elsewhere."""

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def answering(request: Request) -> Response:
            try:
                return await handler(request)
            except ClientDisconnect:
                raise
            except Exception as exc:
                return error_response(translated(exc))

        return answering


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorAnswer(BaseModel):
    """OpenAI's error body, as the SDKs read it."""

    error: ErrorDetail


# What these routes may answer besides 200, for /docs and generated clients.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorAnswer, "description": description}
    for status, description in {
        400: "The request is not valid (param names the field)",
        401: "A missing or wrong key",
        402: "The key's balance cannot pay for the images",
        404: "An unknown model, or one the key may not use",
        429: "The queue is full or the key is over a limit (Retry-After says when to retry)",
        500: "Every image failed, or a server error",
        504: "The images were not ready within the server's generate timeout; they go on",
    }.items()
}
