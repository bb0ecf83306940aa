"""How exceptions become answers. Like the hosted service, API-level errors are HTTP 200 with a
non-zero `code` and a `message` that begins with the hosted service's sentence for the code
(`darkroom.errors.SENTENCES`) and goes on in plain words; code 3 adds `issues`, one per problem.

Routes raise the `darkroom.errors` classes (`InvalidRequest`, `TaskNotFound`, ...) with their
details; the handlers here, keyed by exception class as Starlette's are, turn each into its
envelope. `darkroom.api.issues` builds the code-3 answer's issues.
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, ExceptionHandler, Receive, Scope, Send

from darkroom.api.issues import from_pydantic, invalid
from darkroom.errors import ApiError, InternalError, InvalidRequest, MethodNotFound, Overloaded

log = structlog.get_logger("darkroom.api")


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=200, headers=retry_after_header(error))


def retry_after_header(error: ApiError) -> dict[str, str]:
    """Retry-After in whole seconds (at least 1) for an error that knows when to try again."""
    seconds = error.retry_after if isinstance(error, Overloaded) else None
    return {} if seconds is None else {"Retry-After": str(max(1, math.ceil(seconds)))}


async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid(from_pydantic(exc.errors(), types={}, options={})))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown paths and methods: code 99 under /v1/, a plain JSON 404/405 elsewhere."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/v1/") and exc.status_code in (404, 405):
        method = f"{request.method} {request.url.path}"
        return error_response(MethodNotFound(f"There is no API method {method}."))
    if request.url.path.startswith("/v1/") and exc.status_code == 400:
        # FastAPI's answer to a body it cannot parse, on routes that declare a body model.
        return error_response(InvalidRequest(f"{exc.detail}; send the body as JSON."))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


# What each exception is answered with, looked up along its class's MRO.
HANDLERS: dict[Any, ExceptionHandler] = {
    ApiError: on_api_error,
    RequestValidationError: on_validation_error,
    StarletteHTTPException: on_http_error,
}


def install(app: FastAPI) -> None:
    """Answers every exception of this app in the envelope: the handlers, and the guard."""
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)
    app.add_middleware(InternalErrorMiddleware)


class InternalErrorMiddleware:
    """The guard around the routes: an unexpected exception is logged with the request's path
    and method and answered with code 1, never as an HTML 500 page or a stack trace; a client
    that left is answered with nothing.

    Why not Starlette's own `Exception` handler: ServerErrorMiddleware, which runs it, always
    raises the exception again to the server after the answer, and uvicorn then logs a second
    traceback and closes the connection, so a client's next request on that keep-alive
    connection fails with a reset (tests/e2e/test_errors.py, the internal-fault test). Here
    the exception ends with the answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            return  # nobody is left to answer
        except Exception:
            if started:
                log_internal_error(scope)
                raise
            await internal_error_response(scope)(scope, receive, send)


def log_internal_error(scope: Scope) -> None:
    log.exception("internal error", path=scope.get("path"), method=scope.get("method"))


def internal_error_response(scope: Scope) -> JSONResponse:
    """Code 1 for an exception no handler answers, logged with the request's path and method
    (called while the exception is being handled, for its traceback)."""
    log_internal_error(scope)
    return error_response(InternalError("Please try again later."))


async def handled_response(request: Request, exc: Exception) -> JSONResponse:
    """What the app answers an exception with: its handler's answer, looked up along its
    class's MRO as Starlette does, or code 1 (for routes called outside Starlette's
    middleware: api/hot.py)."""
    for cls in type(exc).__mro__:
        handler = HANDLERS.get(cls)
        if handler is not None:
            return await handler(request, exc)  # type: ignore[no-any-return]
    return internal_error_response(request.scope)
