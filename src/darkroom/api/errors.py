"""The error envelope. Like the hosted service, API-level errors are HTTP 200 with a non-zero
`code` and a `message` in plain words; code 3 adds `issues`, one per problem."""

from __future__ import annotations

import enum
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger("darkroom.api")


class Code(enum.IntEnum):
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


def issue(path: list[str | int], expected: Any, message: str) -> dict[str, Any]:
    return {"path": path, "expected": expected, "message": message}


class ApiError(Exception):
    def __init__(self, code: Code, message: str, issues: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.issues = issues

    @classmethod
    def invalid(cls, issues: list[dict[str, Any]]) -> ApiError:
        summary = "; ".join(
            f"{'.'.join(map(str, i['path'])) or 'body'}: {i['message']}" for i in issues
        )
        return cls(Code.INVALID, f"Invalid request: {summary}", issues)

    def envelope(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": int(self.code), "message": self.message}
        if self.issues is not None:
            body["issues"] = self.issues
        return body


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.envelope(), status_code=200)


async def on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    issues = [
        issue([p for p in e["loc"] if p not in ("body", "query")], e.get("type"), e["msg"])
        for e in exc.errors()
    ]
    return error_response(ApiError.invalid(issues))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown paths and methods: code 99 under /v1/, a plain JSON 404/405 elsewhere."""
    assert isinstance(exc, StarletteHTTPException)
    if request.url.path.startswith("/v1/") and exc.status_code in (404, 405):
        method = f"{request.method} {request.url.path}"
        return error_response(ApiError(Code.NO_METHOD, f"There is no API method {method}."))
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


class InternalErrorMiddleware:
    """Outermost guard: an unexpected exception is logged and answered with code 1, never as
    an HTML 500 page or a stack trace."""

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
            log.exception("internal error", path=scope.get("path"), method=scope.get("method"))
            if started:
                raise
            error = ApiError(Code.INTERNAL, "Internal server error; please try again later.")
            await error_response(error)(scope, receive, send)
