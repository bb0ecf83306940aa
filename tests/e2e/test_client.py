"""The sync Python client against the real server over a socket: generation and download,
every error code the server answers, a failed task, a wait that times out, and the retries of
transient failures (through a local proxy that fails on purpose)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from PIL import Image

from darkroom.client import (
    ApiError,
    AuthenticationError,
    Backoff,
    Client,
    ConfigurationError,
    ConnectionFailed,
    DarkroomError,
    DownloadError,
    InsufficientBalance,
    InternalError,
    InvalidRequest,
    MethodNotFound,
    ModelNotAllowed,
    Overloaded,
    RetryPolicy,
    SensitiveContent,
    Task,
    TaskFailed,
    TaskNotFound,
    UnexpectedResponse,
    UnsafePrompt,
    WaitTimeout,
)
from darkroom.errors import SENTENCES
from tests.support.catalogs import CONFIGS
from tests.support.keys import within_key_cache
from tests.support.servers import Darkroom, FlakyProxy, broken_model_catalog, free_port, running

# Quick retries and polls, so failures cost milliseconds; the schedule itself is the library's.
FAST_RETRY = RetryPolicy(attempts=3, backoff=Backoff(first=0.01, cap=0.05))
FAST_POLLS = Backoff(first=0.05, factor=1.5, cap=0.5, jitter=False)
UNKNOWN_TASK = "6880f043e6060500018821de"


@dataclass
class Installation:
    server: Darkroom
    key: str

    def client(self, **options) -> Client:
        options.setdefault("retry", FAST_RETRY)
        options.setdefault("polls", FAST_POLLS)
        return Client(self.server.base_url, self.key, **options)


@pytest.fixture
def sdk(darkroom: Darkroom, api_key: str) -> Iterator[Client]:
    with Installation(darkroom, api_key).client() as client:
        yield client


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """A server whose only model cannot load: every task fails, on its first attempt."""
    folder = tmp_path_factory.mktemp("broken")
    with running(folder, broken_model_catalog(folder), max_attempts=1) as server:
        yield Installation(server, server.create_key())


@pytest.fixture(scope="module")
def idle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installation]:
    """A server without workers (tasks stay idle) whose queue holds two tasks at most."""
    folder = tmp_path_factory.mktemp("idle")
    with running(folder, CONFIGS / "test.toml", "--workers", "0", max_queue=2) as server:
        yield Installation(server, server.create_key())


@pytest.fixture(scope="module")
def idle_task(idle: Installation) -> Task:
    with idle.client() as client:
        return client.create("a task nobody will take")


# -- success ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "ar", "size"),
    [("google-imagen-3", "16:9", (1408, 768)), ("tiny-512", None, (512, 512))],
)
def test_generate_then_download_saves_the_image_at_its_size(sdk, tmp_path, model, ar, size):
    seen: list[str] = []
    task = sdk.generate(
        "a lighthouse at dusk", model, ar, on_progress=lambda t: seen.append(t.status)
    )
    assert task.done and task.url and task.model == model
    assert seen[0] == "idle" and seen[-1] == "done"
    path = sdk.download(task, tmp_path / "image.webp")
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.size == size


def test_create_result_and_wait_one_step_at_a_time(sdk):
    created = sdk.create("a harbour at dawn", ar="9:16", seed=7)
    assert created.status == "idle" and created.url is None
    assert created.prompt == "a harbour at dawn --ar 9:16"
    assert len(created.id) == 24 and created.raw["code"] == 0
    assert sdk.result(created.id).id == created.id
    finished = sdk.wait(created, timeout=120)
    assert finished.id == created.id and finished.done
    assert finished == sdk.result(created)


def test_fields_beyond_the_named_ones_are_sent_as_given(sdk):
    with pytest.raises(InvalidRequest) as info:
        sdk.create("a fox", seed=-1)
    assert [issue["path"] for issue in info.value.issues] == [["seed"]]
    assert (
        sdk.create("a fox", style="vivid", callback_url="http://example.invalid/").status == "idle"
    )


def test_base_url_and_key_come_from_the_environment(darkroom, api_key, monkeypatch):
    monkeypatch.setenv("DARKROOM_BASE_URL", darkroom.base_url)
    monkeypatch.setenv("DARKROOM_API_KEY", api_key)
    with Client() as client:
        assert client.base_url == darkroom.base_url
        assert client.create("from the environment").status == "idle"


def test_a_missing_key_is_a_clear_error(darkroom, monkeypatch):
    monkeypatch.delenv("DARKROOM_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="DARKROOM_API_KEY"):
        Client(darkroom.base_url)


def test_the_context_manager_closes_the_connections(darkroom, api_key):
    with Client(darkroom.base_url, api_key) as client:
        client.result(client.create("one request"))
    with pytest.raises(RuntimeError, match="closed"):
        client.create("after close")


def test_an_image_link_that_does_not_serve_is_a_download_error(sdk, tmp_path):
    task = sdk.generate("a lighthouse", model="tiny-512")
    with pytest.raises(DownloadError, match="expired or is not valid"):
        sdk.download(task.url.replace("sig=", "sig=0"), tmp_path / "x.webp")
    with pytest.raises(DownloadError, match="has no file"):
        sdk.download(sdk.create("not done yet"), tmp_path / "y.webp")


# -- every error code the server answers ------------------------------------------------------


def assert_api_error(error: DarkroomError, cls: type[ApiError], code: int) -> None:
    assert type(error) is cls and isinstance(error, ApiError) and isinstance(error, DarkroomError)
    assert error.code == code
    assert isinstance(error.message, str) and len(error.message) > 10
    assert str(error) == error.message
    # The server's message as it was sent: its code's sentence, once, then the details.
    assert error.message.startswith(SENTENCES[code] + " ")
    assert error.message.count(SENTENCES[code]) == 1


def test_code_2_an_unknown_or_revoked_key(darkroom):
    with (
        Installation(darkroom, "dk_not-a-real-key").client() as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.create("a fox")
    assert_api_error(info.value, AuthenticationError, 2)
    assert "key" in info.value.message
    key = darkroom.create_key("--name", "to-revoke")
    with Installation(darkroom, key).client() as client:
        client.create("a fox")
        darkroom.cli("keys", "revoke", key)
        within_key_cache(lambda: _refused(client), "the revocation")


def _refused(client) -> bool:  # type: ignore[no-untyped-def]
    try:
        client.create("a fox")
    except AuthenticationError:
        return True
    return False


def test_code_3_carries_the_issues(sdk):
    with pytest.raises(InvalidRequest) as info:
        sdk.create("a fox", ar="2:1")
    assert_api_error(info.value, InvalidRequest, 3)
    (issue,) = info.value.issues
    assert issue["path"] == ["ar"] and "16:9" in issue["expected"]
    with pytest.raises(InvalidRequest) as info:
        sdk.create("a fox", model="dall-e-9")
    assert info.value.issues[0]["expected"] == "'google-imagen-3' | 'tiny-512'"
    assert info.value.issues[0]["options"] == ["google-imagen-3", "tiny-512"]
    with pytest.raises(InvalidRequest):
        sdk.result("not-a-task-id")


def test_code_4_an_unknown_task(sdk):
    with pytest.raises(TaskNotFound) as info:
        sdk.result(UNKNOWN_TASK)
    assert_api_error(info.value, TaskNotFound, 4)


def test_code_5_no_credits_left(darkroom):
    with Installation(darkroom, darkroom.create_key("--credits", "1")).client() as client:
        client.create("the only one")
        with pytest.raises(InsufficientBalance) as info:
            client.create("one too many")
    assert_api_error(info.value, InsufficientBalance, 5)


def fill_queue(client: Client) -> list[Task]:
    """Creates tasks on the idle server until its queue (two places) is full."""
    created = []
    while True:
        try:
            created.append(client.create("fill the queue"))
        except Overloaded:
            return created


def test_code_6_is_retried_a_bounded_number_of_times_then_raised(idle, idle_task):
    with idle.client() as client:
        fillers = fill_queue(client)
        # The proxy counts the tries of a create the full queue refuses.
        with (
            FlakyProxy(idle.server.base_url) as proxy,
            Client(proxy.base_url, idle.key, retry=FAST_RETRY) as proxied_client,
            pytest.raises(Overloaded) as info,
        ):
            proxied_client.create("no room")
        for task in fillers:
            client.cancel(task)  # leave the queue as it was
    assert_api_error(info.value, Overloaded, 6)
    assert proxy.seen == ["POST /v1/media/create"] * FAST_RETRY.attempts


def test_cancel_fails_an_idle_task_and_frees_its_place(idle, idle_task):
    with idle.client() as client:
        fillers = fill_queue(client)
        canceled = client.cancel(fillers[-1].id)
        assert canceled.id == fillers[-1].id
        assert canceled.status == "failed" and canceled.message == "canceled"
        with pytest.raises(TaskFailed, match="canceled"):
            client.wait(canceled)
        for task in [client.create("in the freed place"), *fillers[:-1]]:
            client.cancel(task)


def test_code_7_a_model_the_key_may_not_use(darkroom):
    with (
        Installation(darkroom, darkroom.create_key("--models", "tiny-512")).client() as client,
        pytest.raises(ModelNotAllowed) as info,
    ):
        client.create("a fox", model="google-imagen-3")
    assert_api_error(info.value, ModelNotAllowed, 7)


def test_code_99_a_method_the_api_lacks(sdk):
    with pytest.raises(MethodNotFound) as info:
        sdk.request("POST", "/v1/media/upscale", json={})
    assert_api_error(info.value, MethodNotFound, 99)


def test_the_raw_request_answers_the_json_of_a_method(sdk):
    task = sdk.create("a fox")
    answer = sdk.request("GET", "/v1/media/result", params={"task_id": task.id})
    assert answer["id"] == task.id and answer["code"] == 0


def test_code_1001_sensitive_content_outside_the_prompt(sdk):
    with pytest.raises(SensitiveContent) as info:
        sdk.create("a fox", negative_prompt="forbiddenword")
    assert_api_error(info.value, SensitiveContent, 1001)


def test_code_1002_a_prompt_that_fails_the_safety_check(sdk):
    with pytest.raises(UnsafePrompt) as info:
        sdk.create("a ForbiddenWord in the forest")
    assert_api_error(info.value, UnsafePrompt, 1002)


# -- a failed task, a wait that times out ------------------------------------------------------


def test_a_failed_task_raises_task_failed_with_its_message(broken, tmp_path):
    with broken.client() as client:
        with pytest.raises(TaskFailed) as info:  # noqa: SIM117 - the client is used after it
            client.generate("a lighthouse", timeout=120)
        failed = info.value.task
        assert failed.status == "failed" and failed.failed
        assert info.value.message == failed.message and "could not be generated" in failed.message
        with pytest.raises(TaskFailed):
            client.wait(failed.id)  # asked again, it fails at the first answer
        with pytest.raises(DownloadError):
            client.download(failed, tmp_path / "none.webp")


def test_a_task_that_outlives_the_timeout_raises_wait_timeout(idle, idle_task):
    seen: list[Task] = []
    with (
        idle.client() as client,
        pytest.raises(WaitTimeout) as info,
    ):
        client.wait(idle_task, timeout=0.5, on_progress=seen.append)
    assert isinstance(info.value, TimeoutError)
    assert info.value.task.id == idle_task.id and info.value.task.status == "idle"
    assert seen and {t.status for t in seen} == {"idle"}
    assert idle_task.id in info.value.message


# -- transient failures ------------------------------------------------------------------------


def test_http_503_and_code_6_are_retried_until_the_request_passes(darkroom, api_key):
    with (
        FlakyProxy(darkroom.base_url, ["503", "code 6"]) as proxy,
        Client(proxy.base_url, api_key, retry=FAST_RETRY) as client,
    ):
        task = client.create("third time lucky")
    assert task.status == "idle"
    assert proxy.seen == ["POST /v1/media/create"] * 3


def test_a_dropped_connection_is_retried_for_result_but_not_for_create(darkroom, api_key):
    with (
        FlakyProxy(darkroom.base_url, ["pass", "drop", "503"]) as proxy,
        Client(proxy.base_url, api_key, retry=FAST_RETRY) as client,
    ):
        task = client.create("a fox")
        assert client.result(task.id).id == task.id
    assert proxy.seen == ["POST /v1/media/create"] + ["POST /v1/media/result"] * 3
    # A create whose connection broke may have been queued: it is not sent twice.
    with (
        FlakyProxy(darkroom.base_url, ["drop"]) as proxy,
        Client(proxy.base_url, api_key, retry=FAST_RETRY) as client,
        pytest.raises(ConnectionFailed) as info,
    ):
        client.create("maybe queued")
    assert info.value.sent and proxy.seen == ["POST /v1/media/create"]


def test_retries_stop_after_the_last_attempt(darkroom, api_key):
    with (
        FlakyProxy(darkroom.base_url, ["503"] * 10) as proxy,
        Client(proxy.base_url, api_key, retry=FAST_RETRY) as client,
        pytest.raises(UnexpectedResponse) as info,
    ):
        client.result(UNKNOWN_TASK)
    assert info.value.status_code == 503
    assert len(proxy.seen) == FAST_RETRY.attempts


def test_an_internal_error_is_not_retried(darkroom, api_key):
    with (
        FlakyProxy(darkroom.base_url, ["code 1"]) as proxy,
        Client(proxy.base_url, api_key, retry=FAST_RETRY) as client,
        pytest.raises(InternalError) as info,
    ):
        client.create("a fox")
    assert_api_error(info.value, InternalError, 1)
    assert len(proxy.seen) == 1


def test_a_server_that_is_not_there_is_a_connection_error(api_key):
    with (
        Client(f"http://127.0.0.1:{free_port()}", api_key, retry=FAST_RETRY) as client,
        pytest.raises(ConnectionFailed) as info,
    ):
        client.create("nobody listens")
    assert not info.value.sent and "Could not reach http://127.0.0.1" in info.value.message


def test_a_base_url_that_is_not_the_api_is_an_unexpected_response(darkroom, api_key):
    with (
        Client(f"{darkroom.base_url}/not-the-api", api_key, retry=FAST_RETRY) as client,
        pytest.raises(UnexpectedResponse) as info,
    ):
        client.create("a fox")
    assert info.value.status_code == 404
