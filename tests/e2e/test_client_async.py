"""The asyncio client against the real server over a socket: the same behaviours as the sync
client (generation, every error code, a failed task, a timeout, retries), and many tasks at once
on one client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from PIL import Image

from darkroom.client import (
    ApiError,
    AsyncClient,
    AuthenticationError,
    Backoff,
    Client,
    ConnectionFailed,
    DarkroomError,
    DownloadError,
    InsufficientBalance,
    InvalidRequest,
    MethodNotFound,
    ModelNotAllowed,
    Overloaded,
    RetryPolicy,
    SensitiveContent,
    Task,
    TaskFailed,
    TaskNotFound,
    UnsafePrompt,
    WaitTimeout,
)
from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom, FlakyProxy, broken_model_catalog, running

FAST_RETRY = RetryPolicy(attempts=3, backoff=Backoff(first=0.01, cap=0.05))
FAST_POLLS = Backoff(first=0.05, factor=1.5, cap=0.5, jitter=False)


def connect(base_url: str, key: str) -> AsyncClient:
    return AsyncClient(base_url, key, retry=FAST_RETRY, polls=FAST_POLLS)


@pytest.fixture
async def sdk(darkroom: Darkroom, api_key: str) -> AsyncIterator[AsyncClient]:
    async with connect(darkroom.base_url, api_key) as client:
        yield client


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    """A server whose only model cannot load: every task fails, on its first attempt."""
    folder = tmp_path_factory.mktemp("broken")
    with running(folder, broken_model_catalog(folder), max_attempts=1) as server:
        yield server


@dataclass
class Idle:
    server: Darkroom
    key: str
    task_id: str
    """A task that stays idle, created before the queue fills up."""


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Idle]:
    """A server without workers (tasks stay idle) whose queue holds two tasks at most."""
    folder = tmp_path_factory.mktemp("idle")
    with running(folder, CONFIGS / "test.toml", "--workers", "0", max_queue=2) as server:
        key = server.create_key()
        with Client(server.base_url, key) as client:
            yield Idle(server, key, client.create("a task nobody will take").id)


@asynccontextmanager
async def proxied(
    server: Darkroom, key: str, failures: list[str] | None = None
) -> AsyncIterator[tuple[FlakyProxy, AsyncClient]]:
    with FlakyProxy(server.base_url, failures) as proxy:
        async with connect(proxy.base_url, key) as client:
            yield proxy, client


async def raised(cls: type[DarkroomError], awaitable) -> DarkroomError:
    with pytest.raises(cls) as info:
        await awaitable
    error = info.value
    assert type(error) is cls and isinstance(error, DarkroomError)
    assert isinstance(error.message, str) and len(error.message) > 10
    return error


# -- success ------------------------------------------------------------------------------------


async def test_generate_then_download_saves_the_image_at_its_size(sdk, tmp_path):
    seen: list[str] = []
    task = await sdk.generate(
        "a lighthouse at dusk", ar="9:21", on_progress=lambda t: seen.append(t.status)
    )
    assert task.done and task.prompt == "a lighthouse at dusk --ar 9:21"
    assert seen[0] == "idle" and seen[-1] == "done"
    path = await sdk.download(task, tmp_path / "image.webp")
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.size == (640, 1536)


async def test_many_tasks_at_once_on_one_client(sdk):
    prompts = [f"a fox number {i}" for i in range(6)]
    tasks = await asyncio.gather(*(sdk.generate(p, model="tiny-512") for p in prompts))
    assert [t.status for t in tasks] == ["done"] * len(prompts)
    assert len({t.id for t in tasks}) == len(prompts)


async def test_create_result_and_wait_one_step_at_a_time(sdk):
    created = await sdk.create("a harbour", model="tiny-512", seed=3)
    assert created.status == "idle" and created.url is None
    assert (await sdk.result(created.id)).id == created.id
    assert (await sdk.wait(created, timeout=120)).done


async def test_the_context_manager_closes_the_connections(darkroom, api_key):
    async with connect(darkroom.base_url, api_key) as client:
        await client.create("one request")
    with pytest.raises(RuntimeError, match="closed"):
        await client.create("after close")


# -- every error code the server answers ------------------------------------------------------


async def test_code_2_an_unknown_key(darkroom):
    async with connect(darkroom.base_url, "dk_not-a-real-key") as client:
        error = await raised(AuthenticationError, client.create("a fox"))
    assert error.code == 2 and "key" in error.message


async def test_code_3_carries_the_issues(sdk):
    error = await raised(InvalidRequest, sdk.create("a fox", model="tiny-512", ar="21:9"))
    assert error.code == 3
    assert error.issues == [
        {
            "code": "invalid_enum_value",
            "received": "21:9",
            "options": ["1:1", "16:9", "9:16"],
            "expected": "'1:1' | '16:9' | '9:16'",
            "path": ["ar"],
            "message": "Invalid enum value. Expected '1:1' | '16:9' | '9:16', received '21:9'",
        }
    ]


async def test_code_4_an_unknown_task(sdk):
    error = await raised(TaskNotFound, sdk.result("6880f043e6060500018821de"))
    assert error.code == 4


async def test_code_5_no_credits_left(darkroom):
    async with connect(darkroom.base_url, darkroom.create_key("--credits", "1")) as client:
        await client.create("the only one")
        error = await raised(InsufficientBalance, client.create("one too many"))
    assert error.code == 5


async def test_code_6_is_retried_a_bounded_number_of_times_then_raised(idle):
    async with connect(idle.server.base_url, idle.key) as client:
        filler = await client.create("fill the queue")  # the second of two places
        async with proxied(idle.server, idle.key) as (proxy, proxied_client):
            error = await raised(Overloaded, proxied_client.create("no room"))
        assert error.code == 6
        assert proxy.seen == ["POST /v1/media/create"] * FAST_RETRY.attempts
        # Canceling an idle task fails it at once and frees its place.
        canceled = await client.cancel(filler)
        assert canceled.status == "failed" and canceled.message == "canceled"
        assert (await client.create("in the freed place")).status == "idle"


async def test_code_7_a_model_the_key_may_not_use(darkroom):
    async with connect(darkroom.base_url, darkroom.create_key("--models", "tiny-512")) as client:
        error = await raised(ModelNotAllowed, client.create("a fox"))
    assert error.code == 7


async def test_code_99_a_method_the_api_lacks(sdk):
    error = await raised(MethodNotFound, sdk.request("DELETE", "/v1/media/result"))
    assert error.code == 99 and isinstance(error, ApiError)


async def test_codes_1001_and_1002_content_safety(sdk):
    error = await raised(SensitiveContent, sdk.create("a fox", negative_prompt="forbiddenword"))
    assert error.code == 1001
    error = await raised(UnsafePrompt, sdk.create("forbiddenword"))
    assert error.code == 1002


# -- a failed task, a wait that times out, transient failures -----------------------------------


async def test_a_failed_task_raises_task_failed_with_its_message(broken, tmp_path):
    async with connect(broken.base_url, broken.create_key()) as client:
        error = await raised(TaskFailed, client.generate("a lighthouse", timeout=120))
        assert error.task.status == "failed"
        assert "could not be generated" in error.message
        await raised(DownloadError, client.download(error.task, tmp_path / "none.webp"))


async def test_a_task_that_outlives_the_timeout_raises_wait_timeout(idle):
    seen: list[Task] = []
    async with connect(idle.server.base_url, idle.key) as client:
        wait = client.wait(idle.task_id, timeout=0.5, on_progress=seen.append)
        error = await raised(WaitTimeout, wait)
    assert error.task.id == idle.task_id and error.task.status == "idle"
    assert seen and {t.status for t in seen} == {"idle"}


async def test_transient_failures_are_retried_and_a_broken_create_is_not(darkroom, api_key):
    async with proxied(darkroom, api_key, ["503", "code 6", "pass", "drop"]) as (proxy, client):
        task = await client.create("third time lucky")
        assert (await client.result(task)).id == task.id
    assert proxy.seen == ["POST /v1/media/create"] * 3 + ["POST /v1/media/result"] * 2
    async with proxied(darkroom, api_key, ["drop"]) as (proxy, client):
        error = await raised(ConnectionFailed, client.create("maybe queued"))
    assert error.sent and len(proxy.seen) == 1
