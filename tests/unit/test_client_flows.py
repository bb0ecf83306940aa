"""The client's sans-IO core (client/flows.py) against a scripted server on httpx's
MockTransport: what each flow sends, how it polls, which exception each error code raises,
which failures the retry policy tries again and how long it is told to sleep before it does.
A last pair of tests runs the sync and async clients themselves over the same transport."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from darkroom.client import AsyncClient, Backoff, Client, RetryPolicy, flows
from darkroom.client import errors as client_errors
from darkroom.client.errors import (
    ApiError,
    ConnectionFailed,
    DownloadError,
    InvalidRequest,
    Overloaded,
    TaskFailed,
    UnexpectedResponse,
    WaitTimeout,
)
from darkroom.client.models import Task
from darkroom.testing import InMemoryStorage
from tests.support.mock_api import API_KEY, BASE_URL, FlowDriver, ScriptedApi, task_answer

BACKOFF = Backoff(first=0.5, factor=2.0, cap=8.0, jitter=False)
RETRY = RetryPolicy(attempts=3, backoff=BACKOFF)
POLLS = Backoff(first=0.25, factor=2.0, cap=1.0, jitter=False)
OVERLOADED = {"code": 6, "message": "The server is busy."}


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


def broken() -> httpx.ReadError:
    return httpx.ReadError("connection reset")


def test_create_posts_the_body_once_and_returns_the_queued_task() -> None:
    api = ScriptedApi(task_answer("idle"))
    body = flows.create_body("a harbour", "fake", "16:9", 7, None, None, {"steps": 4})
    task = FlowDriver(api).run(flows.create(body, RETRY))
    assert task.id == "task-1" and task.status == "idle"
    [request] = api.requests
    assert request.method == "POST" and request.url.path == "/v1/media/create"
    assert api.bodies() == [
        {"model": "fake", "prompt": "a harbour", "ar": "16:9", "seed": 7, "steps": 4}
    ]


def test_wait_polls_until_done_with_the_poll_backoffs_pauses() -> None:
    api = ScriptedApi(
        task_answer("idle"),
        task_answer("processing", progress=40),
        task_answer("processing", progress=80),
        task_answer("done", url="u"),
    )
    driver = FlowDriver(api)
    seen: list[str] = []
    task = driver.run(flows.wait("task-1", RETRY, POLLS, None, lambda t: seen.append(t.status)))
    assert task.done and task.url == "u"
    assert seen == ["idle", "processing", "processing", "done"]
    assert driver.sleeps == [0.25, 0.5, 1.0]  # grows by the factor, up to the cap
    assert api.bodies() == [{"task_id": "task-1"}] * 4


def test_a_failed_tasks_reason_is_read_from_error_when_message_is_absent() -> None:
    # The hosted service's clients read either field; a server may send only `error`.
    answer = task_answer("failed", error="The prompt was refused.")
    assert Task.from_payload(answer).message == "The prompt was refused."


def test_wait_raises_task_failed_with_the_servers_message() -> None:
    api = ScriptedApi(task_answer("failed", message="The prompt was refused."))
    with pytest.raises(TaskFailed, match="The prompt was refused.") as caught:
        FlowDriver(api).run(flows.wait("task-1", RETRY, POLLS, None))
    assert caught.value.task.status == "failed"


def test_wait_raises_wait_timeout_once_its_time_is_up() -> None:
    api = ScriptedApi(task_answer("processing"))
    with pytest.raises(WaitTimeout) as caught:
        FlowDriver(api).run(flows.wait("task-1", RETRY, POLLS, timeout=0.0))
    assert caught.value.task.status == "processing" and len(api.requests) == 1


@pytest.mark.parametrize("code", sorted(client_errors.ERRORS_BY_CODE))
def test_each_error_code_raises_its_class_with_the_servers_words(code: int) -> None:
    issues = [{"path": ["prompt"], "message": "too long"}] if code == 3 else None
    api = ScriptedApi({"code": code, "message": f"message {code}", "issues": issues})
    driver = FlowDriver(api)
    with pytest.raises(client_errors.ERRORS_BY_CODE[code]) as caught:
        driver.run(flows.result("task-1", RetryPolicy(attempts=1)))
    assert caught.value.code == code and caught.value.message == f"message {code}"
    assert caught.value.issues == issues


def test_an_unknown_code_raises_an_api_error_carrying_it() -> None:
    api = ScriptedApi({"code": 4242, "message": "new"})
    with pytest.raises(ApiError) as caught:
        FlowDriver(api).run(flows.result("task-1", RETRY))
    assert type(caught.value) is ApiError and caught.value.code == 4242


def test_a_code_that_retrying_cannot_fix_is_not_retried() -> None:
    api = ScriptedApi({"code": 3, "message": "bad", "issues": []}, task_answer())
    with pytest.raises(InvalidRequest):
        FlowDriver(api).run(flows.create({"prompt": "p"}, RETRY))
    assert len(api.requests) == 1


def test_code_6_is_retried_with_the_backoffs_pauses_even_for_a_create() -> None:
    api = ScriptedApi(OVERLOADED, OVERLOADED, task_answer())
    driver = FlowDriver(api)
    task = driver.run(flows.create({"prompt": "p"}, RETRY))
    assert task.status == "idle" and len(api.requests) == 3
    assert driver.sleeps == [0.5, 1.0]


def test_code_6_raises_overloaded_after_the_last_attempt() -> None:
    api = ScriptedApi(OVERLOADED, OVERLOADED, OVERLOADED, task_answer())
    driver = FlowDriver(api)
    with pytest.raises(Overloaded):
        driver.run(flows.result("task-1", RETRY))
    assert len(api.requests) == RETRY.attempts and len(driver.sleeps) == RETRY.attempts - 1


def test_a_connection_refused_before_sending_is_retried_even_for_a_create() -> None:
    api = ScriptedApi(refused(), task_answer())
    task = FlowDriver(api).run(flows.create({"prompt": "p"}, RETRY))
    assert task.id == "task-1" and len(api.requests) == 2


def test_a_create_whose_connection_broke_after_sending_is_not_sent_again() -> None:
    api = ScriptedApi(broken(), task_answer())
    with pytest.raises(ConnectionFailed) as caught:
        FlowDriver(api).run(flows.create({"prompt": "p"}, RETRY))
    assert caught.value.sent and len(api.requests) == 1


def test_a_result_whose_connection_broke_is_asked_again() -> None:
    api = ScriptedApi(broken(), broken(), task_answer("done", url="u"))
    assert FlowDriver(api).run(flows.result("task-1", RETRY)).done
    assert len(api.requests) == 3


def test_a_503_is_retried_after_its_retry_after_capped_by_the_backoff() -> None:
    api = ScriptedApi(
        httpx.Response(503, headers={"Retry-After": "3"}),
        httpx.Response(503, headers={"Retry-After": "120"}),
        task_answer(),
    )
    driver = FlowDriver(api)
    driver.run(flows.create({"prompt": "p"}, RETRY))
    assert driver.sleeps == [3.0, BACKOFF.cap]


def test_an_answer_that_is_not_the_apis_json_raises_unexpected_response() -> None:
    api = ScriptedApi(httpx.Response(200, text="<html>a proxy</html>"), task_answer())
    with pytest.raises(UnexpectedResponse, match="not a JSON object"):
        FlowDriver(api).run(flows.result("task-1", RETRY))
    assert len(api.requests) == 1


# -- download: links of the in-memory storage -----------------------------------------------------


async def stored_link(storage: InMemoryStorage, expires_at: float) -> str:
    await storage.put("exp1h/task-1_result.webp", b"RIFF-image-WEBP", "image/webp")
    return storage.url("exp1h/task-1_result.webp", expires_at)


async def test_download_gets_the_link_without_the_key_and_returns_its_bytes() -> None:
    storage = InMemoryStorage()
    url = await stored_link(storage, time.time() + 60)
    api = ScriptedApi(storage=storage.handle_request)
    task = Task.from_payload(task_answer("done", url=url))
    assert FlowDriver(api).run(flows.download(task, RETRY)) == b"RIFF-image-WEBP"
    assert [request.url for request in api.link_requests] == [httpx.URL(url)]
    assert "authorization" not in api.link_requests[0].headers


@pytest.mark.parametrize("gone", ["expired", "deleted"])
async def test_download_of_a_dead_link_raises_download_error(gone: str) -> None:
    storage = InMemoryStorage()
    url = await stored_link(storage, time.time() - 1 if gone == "expired" else time.time() + 60)
    if gone == "deleted":
        await storage.delete(["exp1h/task-1_result.webp"])
    driver = FlowDriver(ScriptedApi(storage=storage.handle_request))
    with pytest.raises(DownloadError, match="expired or is not valid"):
        driver.run(flows.download(url, RETRY))


def test_download_of_a_task_without_an_image_raises_download_error() -> None:
    task = Task.from_payload(task_answer("failed", message="refused"))
    with pytest.raises(DownloadError, match="has no file"):
        FlowDriver(ScriptedApi()).run(flows.download(task, RETRY))


# -- the clients themselves over MockTransport ----------------------------------------------------

QUICK = {
    "retry": RetryPolicy(attempts=2, backoff=Backoff(first=0.0, jitter=False)),
    "polls": Backoff(first=0.0, jitter=False),
}


async def scripted_generate() -> ScriptedApi:
    """A generate's answers (one of them code 6) and a link to an image in storage."""
    storage = InMemoryStorage()
    url = await stored_link(storage, time.time() + 60)
    return ScriptedApi(
        task_answer("idle"),
        OVERLOADED,
        task_answer("processing"),
        task_answer("done", url=url),
        storage=storage.handle_request,
    )


def assert_generated_and_downloaded(api: ScriptedApi, path: Path) -> None:
    assert path.read_bytes() == b"RIFF-image-WEBP"
    paths = [request.url.path for request in api.requests]
    assert paths == ["/v1/media/create"] + ["/v1/media/result"] * 3
    assert [request.headers["authorization"] for request in api.requests] == [API_KEY] * 4
    assert ["authorization" in request.headers for request in api.link_requests] == [False]


async def test_the_sync_client_generates_and_downloads_with_its_key_on_api_calls_only(
    tmp_path: Path,
) -> None:
    api = await scripted_generate()
    with Client(BASE_URL, API_KEY, transport=httpx.MockTransport(api), **QUICK) as client:
        path = client.download(client.generate("a harbour", "fake"), tmp_path / "image.webp")
    assert_generated_and_downloaded(api, path)


async def test_the_async_client_generates_and_downloads_as_the_sync_one_does(
    tmp_path: Path,
) -> None:
    api = await scripted_generate()
    transport = httpx.MockTransport(api)
    async with AsyncClient(BASE_URL, API_KEY, transport=transport, **QUICK) as client:
        task = await client.generate("a harbour", "fake")
        path = await client.download(task, tmp_path / "image.webp")
    assert_generated_and_downloaded(api, path)
