"""Exceptions to answers, in memory: each class of `darkroom.errors` is its code's envelope,
a bug is code 1 (JSON, logged with path and method, no stack trace to the client), and a
client that left is answered with nothing. The app is a bare FastAPI with Darkroom's
handlers and guard installed, called as an ASGI server calls it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from structlog.testing import capture_logs

from darkroom.api import create_app
from darkroom.api.errors import HANDLERS, InternalErrorMiddleware, install, invalid, issue
from darkroom.errors import ERRORS_BY_CODE, Code, InvalidRequest

Message = dict[str, Any]


def bare_app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.post("/v1/media/refused/{code}")
    async def refused(code: int) -> None:
        raise ERRORS_BY_CODE[code](f"refused with code {code}")

    @app.post("/v1/media/invalid")
    async def invalid_input() -> None:
        raise invalid([issue(["prompt"], "a string", "prompt is required")])

    @app.post("/v1/media/bug")
    async def bug() -> None:
        raise RuntimeError("a secret detail of the bug")

    @app.post("/v1/media/read")
    async def read(request: Request) -> None:
        await request.body()

    return app


@dataclass
class Exchange:
    sent: list[Message] = field(default_factory=list)
    raised: Exception | None = None  # what the app raised to the server after answering


async def call(app: FastAPI, method: str, path: str, *, disconnected: bool = False) -> Exchange:
    """What the app sends for one request, and raises, as uvicorn would see them."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }
    exchange = Exchange()

    async def receive() -> Message:
        if disconnected:
            return {"type": "http.disconnect"}
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        exchange.sent.append(message)

    try:
        await app(scope, receive, send)
    except Exception as exc:
        exchange.raised = exc
    return exchange


def answer_of(exchange: Exchange) -> tuple[int, dict[str, str], dict[str, Any]]:
    assert exchange.sent, "nothing was answered"
    start, *body_messages = exchange.sent
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in body_messages)
    return start["status"], headers, json.loads(body)


@pytest.mark.parametrize("code", sorted(ERRORS_BY_CODE))
async def test_each_error_class_is_its_codes_envelope_with_http_200(code):
    status, _, body = answer_of(await call(bare_app(), "POST", f"/v1/media/refused/{code}"))
    assert status == 200
    assert body == {"code": code, "message": f"refused with code {code}"}


async def test_invalid_input_carries_its_issues_and_sums_them_up():
    _, _, body = answer_of(await call(bare_app(), "POST", "/v1/media/invalid"))
    assert body == {
        "code": Code.INVALID,
        "message": "Invalid request: prompt: prompt is required",
        "issues": [{"path": ["prompt"], "expected": "a string", "message": "prompt is required"}],
    }
    assert isinstance(invalid([]), InvalidRequest)


async def test_an_unknown_method_under_v1_is_code_99():
    _, _, body = answer_of(await call(bare_app(), "GET", "/v1/media/invalid"))
    assert body["code"] == Code.NO_METHOD


async def test_a_bug_is_code_1_in_json_logged_with_path_and_method():
    with capture_logs() as logs:
        exchange = await call(bare_app(), "POST", "/v1/media/bug")
    status, headers, body = answer_of(exchange)
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == {"code": 1, "message": "Internal server error; please try again later."}
    assert "secret detail" not in json.dumps(body)
    [entry] = [e for e in logs if e["event"] == "internal error"]
    assert entry["path"] == "/v1/media/bug" and entry["method"] == "POST"
    assert entry["exc_info"] is True
    # It ends with the answer: the server sees no exception, so it keeps the connection open.
    assert exchange.raised is None


async def test_a_client_that_left_is_answered_with_nothing_and_nothing_is_logged():
    with capture_logs() as logs:
        exchange = await call(bare_app(), "POST", "/v1/media/read", disconnected=True)
    assert exchange.sent == [] and exchange.raised is None
    assert logs == []


def test_the_darkroom_app_answers_with_these_handlers_and_guard():
    app = create_app()
    assert all(app.exception_handlers[cls] is handler for cls, handler in HANDLERS.items())
    assert [m.cls for m in app.user_middleware] == [InternalErrorMiddleware]
