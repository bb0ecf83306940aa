"""What the relay makes of the errors Darkroom's client raises: which are tried again, which
fail the task at once, and that no message carries the upstream key."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from darkroom.client.errors import ConnectionFailed, DownloadError, UnexpectedResponse
from darkroom.engines.catalog import Catalog
from darkroom.engines.upstream.calls import UpstreamFailure
from darkroom.engines.upstream.relay import RESULT_LINK, RelayEngine
from darkroom.errors import Code, GenerationError, error_for

KEY = "dk_upstream_secret_key_123"


@pytest.fixture
def relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[RelayEngine]:
    monkeypatch.setenv("RELAY_UNIT_KEY", KEY)
    entry = {"engine": "relay", "base_url": "http://127.0.0.1:9", "api_key_env": "RELAY_UNIT_KEY"}
    engine = RelayEngine(Catalog.from_dict({"relayed": entry})["relayed"])
    yield engine
    asyncio.run(engine.close())


@pytest.mark.parametrize(
    ("code", "retryable"),
    [
        (Code.INTERNAL, True),
        (Code.OVERLOADED, True),
        (Code.BAD_KEY, False),
        (Code.NO_BALANCE, False),
        (Code.MODEL_NOT_ALLOWED, False),
        (Code.INVALID, False),
        (Code.NO_METHOD, False),
    ],
)
def test_codes_that_may_pass_are_retried(relay, code, retryable):
    failure = relay._failure(error_for(code, f"no, {KEY}"))
    assert isinstance(failure, UpstreamFailure)
    assert failure.retryable is retryable
    assert f"code {int(code)}" in failure.message and KEY not in failure.message


def test_operator_codes_say_whom_to_tell(relay):
    failure = relay._failure(error_for(Code.BAD_KEY, "Missing or unknown API key."))
    assert "operator" in failure.message


@pytest.mark.parametrize("code", [Code.SENSITIVE_CONTENT, Code.UNSAFE_PROMPT])
def test_refusals_fail_the_task_with_their_code(relay, code):
    failure = relay._failure(error_for(code, "The prompt failed the check."))
    assert isinstance(failure, GenerationError)
    assert f"code {int(code)}" in str(failure)


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (502, True), (404, False)])
def test_http_statuses_decide_as_for_every_upstream(relay, status, retryable):
    failure = relay._failure(UnexpectedResponse("proxy page", status_code=status))
    assert failure.retryable is retryable and f"HTTP {status}" in failure.message


def test_an_answer_that_is_not_a_task_may_pass(relay):
    failure = relay._failure(UnexpectedResponse("not JSON", status_code=200))
    assert failure.retryable


def test_a_lost_connection_is_named_by_its_kind(relay):
    lost = ConnectionFailed("Could not reach it.", sent=False)
    lost.__cause__ = httpx.ConnectError("refused")
    failure = relay._failure(lost)
    assert failure.retryable and "could not be reached (ConnectError)" in failure.message
    slow = ConnectionFailed("Could not reach it.", sent=True)
    slow.__cause__ = httpx.ReadTimeout("slow")
    assert "did not answer in time" in relay._failure(slow).message


def test_a_result_link_that_fails_for_a_while_is_retried(relay):
    busy = DownloadError("The image link answered HTTP 503.")
    busy.__cause__ = UnexpectedResponse("busy", status_code=503)
    failure = relay._failure(busy, RESULT_LINK)
    assert failure.retryable and failure.message.startswith(RESULT_LINK)
    gone = relay._failure(DownloadError("The image link answered HTTP 404."), RESULT_LINK)
    assert not gone.retryable and "HTTP 404" in gone.message
