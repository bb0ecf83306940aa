"""Exceptions to answers, in memory: each class of `darkroom.errors` is its code's envelope,
its message the hosted service's sentence for the code and then the details (and raised again
from an answer as it was sent), a bug is code 1 (JSON, logged with path and method, no stack
trace to the client), and a client that left is answered with nothing. The app is a bare
FastAPI with Darkroom's handlers and guard installed, called as an ASGI server calls it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI, Request
from structlog.testing import capture_logs

from darkroom.api import create_app
from darkroom.api.errors import HANDLERS, InternalErrorMiddleware, install
from darkroom.api.issues import invalid, required
from darkroom.errors import ERRORS_BY_CODE, SENTENCES, ApiError, Code, InvalidRequest, error_for

Message = dict[str, Any]


def bare_app() -> FastAPI:
    app = FastAPI()
    install(app)

    @app.post("/v1/media/refused/{code}")
    async def refused(code: int) -> None:
        raise ERRORS_BY_CODE[code](f"refused with code {code}")

    @app.post("/v1/media/invalid")
    async def invalid_input() -> None:
        raise invalid([required(["prompt"], "string")])

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
    assert body == {"code": code, "message": f"{SENTENCES[code]} refused with code {code}"}


def test_every_code_has_the_hosted_services_sentence():
    assert set(SENTENCES) == set(ERRORS_BY_CODE)
    assert SENTENCES[Code.BAD_KEY] == (
        "Invalid token, check if authorization header has a valid value."
    )
    assert all(sentence.endswith(".") for sentence in SENTENCES.values())


def test_an_error_without_details_is_its_sentence_alone():
    assert ERRORS_BY_CODE[Code.NOT_FOUND]().message == "Record not found."


@pytest.mark.parametrize("code", sorted(ERRORS_BY_CODE))
def test_an_answers_message_is_raised_again_as_it_was_sent(code):
    sent = f"{SENTENCES[code]} what the server said"
    error = error_for(code, sent, None)
    assert type(error) is ERRORS_BY_CODE[code] and error.code == code
    assert error.message == str(error) == sent  # not prefixed a second time
    assert error_for(code, "an older server's words").message == "an older server's words"


def test_an_unknown_code_is_a_plain_api_error_with_the_message_as_sent():
    error = error_for(4242, "something new", None)
    assert type(error) is ApiError and error.code == 4242 and error.message == "something new"


async def test_invalid_input_carries_its_issues_and_sums_them_up():
    _, _, body = answer_of(await call(bare_app(), "POST", "/v1/media/invalid"))
    assert body == {
        "code": Code.INVALID,
        "message": "Invalid input, check schema issues. prompt: Required",
        "issues": [
            {
                "code": "invalid_type",
                "expected": "string",
                "received": "undefined",
                "path": ["prompt"],
                "message": "Required",
            }
        ],
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
    assert body == {"code": 1, "message": "Internal server error. Please try again later."}
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
