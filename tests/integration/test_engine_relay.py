"""The relay engine against a second, real Darkroom process serving the tiny model (and, for
progress, against a scripted server speaking the same API)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import math
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from darkroom.engines import BatchMonitor, GenerationError, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.upstream import relay
from darkroom.engines.upstream._poller import PollerClosed
from darkroom.fetch import ALLOW_PRIVATE_VARIABLE
from tests.support.fakes.base import Answer, bomb_png
from tests.support.fakes.media_api import API_KEY as FAKE_KEY
from tests.support.fakes.media_api import FakeMediaAPI
from tests.support.fakes.serving import client_for, download, serving
from tests.support.servers import Darkroom, wait_for_status

KEY_ENV = "DARKROOM_TEST_RELAY_KEY"
UPSTREAM_CATALOG = """
[models."google-imagen-3"]
engine = "tiny"
max_batch = 4

[safety]
blocked_terms = ["forbiddenword"]
"""
FAST = {"poll_seconds": 1, "poll_max_seconds": 1, "attempts": 3, "retry_initial_seconds": 0.05}


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Darkroom, str]]:
    """The upstream: a real Darkroom with a worker and the tiny model, and a key for it."""
    with serving(tmp_path_factory.mktemp("upstream"), UPSTREAM_CATALOG) as darkroom:
        yield darkroom, darkroom.create_key("--name", "relay")


@pytest.fixture
def idle_upstream(tmp_path: Path) -> Iterator[tuple[Darkroom, str]]:
    """An upstream with no worker: its tasks stay idle until someone stops it."""
    with serving(tmp_path / "idle-upstream", UPSTREAM_CATALOG, None, "--workers", "0") as server:
        yield server, server.create_key("--name", "relay")


def relay_engine(base_url: str, key: str, monkeypatch: pytest.MonkeyPatch, **options: Any):
    monkeypatch.setenv(KEY_ENV, key)
    entry = {
        "engine": "relay",
        "base_url": base_url,
        "api_key_env": KEY_ENV,
        "upstream_model": "google-imagen-3",
        **FAST,
        **options,
    }
    spec = Catalog.from_dict({"relayed": entry})["relayed"]
    return load_engine(spec, Path()), spec


def job(spec, ratio: str = "1:1", prompt: str = "a lighthouse", n: int = 0) -> Job:
    width, height = spec.size_for(ratio)
    return Job(task_id=f"task{n}", prompt=prompt, width=width, height=height, seed=3)


async def generate(engine, *jobs: Job, monitor: BatchMonitor | None = None) -> list:
    try:
        return await engine.generate(list(jobs), monitor or BatchMonitor())
    finally:
        await engine.close()


async def test_relays_each_ratio_to_a_real_darkroom(upstream, monkeypatch):
    server, key = upstream
    engine, spec = relay_engine(server.base_url, key, monkeypatch)
    jobs = [job(spec, ratio, n=i) for i, ratio in enumerate(("1:1", "21:9", "9:16"))]
    outcomes = await generate(engine, *jobs)
    for image, asked in zip(outcomes, jobs, strict=True):
        assert not isinstance(image, GenerationError), image
        assert image.size == (asked.width, asked.height)


async def test_upstream_safety_refusal_names_its_code(upstream, monkeypatch):
    server, key = upstream
    engine, spec = relay_engine(server.base_url, key, monkeypatch)
    [refusal] = await generate(engine, job(spec, prompt="a forbiddenword here"))
    assert isinstance(refusal, GenerationError)
    assert "code 1002" in str(refusal)


async def test_upstream_input_errors_are_not_retried(upstream, monkeypatch):
    server, key = upstream
    engine, spec = relay_engine(server.base_url, key, monkeypatch, upstream_model="nope")
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "code 3" in str(failure) and "google-imagen-3" in str(failure)


async def test_a_wrong_key_is_an_operator_message_without_the_key(upstream, monkeypatch):
    server, _ = upstream
    engine, spec = relay_engine(server.base_url, "dr_wrong_key_123456789", monkeypatch)
    [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "operator" in str(failure) and "dr_wrong_key" not in str(failure)


async def test_progress_is_reported_and_the_key_stays_with_the_api(monkeypatch):
    with FakeMediaAPI(polls_before_done=1, progress=40) as fake:
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        monitor = BatchMonitor()
        [image] = await generate(engine, job(spec, "16:9"), monitor=monitor)
    assert image.size == (1408, 768)
    assert monitor.progress == pytest.approx(0.4)
    [download] = [r for r in fake.requests if r.path.startswith("/files/")]
    assert "authorization" not in download.headers
    [create] = [r for r in fake.requests if r.path == "/v1/media/create"]
    assert create.json()["ar"] == "16:9" and create.json()["seed"] == 3


async def test_reference_images_go_upstream_as_data_urls(monkeypatch):
    red, blue = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (8, 8), "blue")
    with FakeMediaAPI(polls_before_done=0) as fake:
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        edit, plain = replace(job(spec, n=1), images=(red, blue)), job(spec, n=2)
        await generate(engine, edit, plain)
    by_prompt = sorted(fake.created, key=lambda body: "images" in body)
    assert "images" not in by_prompt[0]  # a task without images sends none
    sent = by_prompt[1]["images"]
    prefix = "data:image/jpeg;base64,"
    assert [url[: len(prefix)] for url in sent] == [prefix] * 2
    pictures = [Image.open(io.BytesIO(base64.b64decode(url[len(prefix) :]))) for url in sent]
    assert [(p.format, p.size) for p in pictures] == [("JPEG", (40, 30)), ("JPEG", (8, 8))]
    r, g, b = pictures[0].convert("RGB").getpixel((20, 15))
    assert r > 240 and g < 15 and b < 15  # red, up to JPEG's rounding


async def test_one_poller_serves_many_tasks(monkeypatch):
    with FakeMediaAPI(polls_before_done=2) as fake:
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        batch = [job(spec, n=i) for i in range(3)]
        task = asyncio.create_task(engine.generate(batch, BatchMonitor()))
        while len(fake.tasks) < 3:
            await asyncio.sleep(0.05)
        pollers = [t for t in asyncio.all_tasks() if t.get_name() == "relay-poller"]
        assert len(pollers) == 1
        outcomes = await task
        await engine.close()
    assert all(not isinstance(o, GenerationError) for o in outcomes)


async def test_a_canceled_task_stops_polling_and_is_canceled_upstream(idle_upstream, monkeypatch):
    server, key = idle_upstream
    engine, spec = relay_engine(server.base_url, key, monkeypatch)
    monitor = BatchMonitor()
    running = asyncio.create_task(engine.generate([job(spec)], monitor))
    with client_for(server, key) as client:
        [upstream_id] = await asyncio.to_thread(_upstream_task_ids, server)
        monitor.canceled.add("task0")
        [outcome] = await running
        await engine.close()
        assert isinstance(outcome, GenerationError) and str(outcome) == "canceled"
        upstream_task = await asyncio.to_thread(wait_for_status, client, upstream_id, timeout=30)
        assert upstream_task["status"] == "failed" and upstream_task["message"] == "canceled"


def _upstream_task_ids(server: Darkroom) -> list[str]:
    """The ids of the tasks the upstream holds, read from its database as they appear."""
    for _ in range(600):
        with contextlib.closing(sqlite3.connect(server.data_dir / "darkroom.db")) as db:
            ids = [row[0] for row in db.execute("SELECT id FROM tasks ORDER BY created_at")]
        if ids:
            return ids
        time.sleep(0.05)
    raise TimeoutError("the relay created no upstream task")


def test_end_to_end_relay_and_upstream_going_down(tmp_path, upstream, idle_upstream):
    up, key = upstream
    down, down_key = idle_upstream
    catalog = f"""
[models."relayed"]
engine = "relay"
base_url = "{up.base_url}"
api_key_env = "{KEY_ENV}"
upstream_model = "google-imagen-3"
poll_seconds = 1
max_batch = 2

[models."fragile"]
engine = "relay"
base_url = "{down.base_url}"
api_key_env = "FRAGILE_KEY"
upstream_model = "google-imagen-3"
poll_seconds = 1
poll_max_seconds = 1
attempts = 3
retry_initial_seconds = 0.05
"""
    env = {KEY_ENV: key, "FRAGILE_KEY": down_key}
    with serving(tmp_path / "front", catalog, env) as front, client_for(front) as client:
        made = client.post(
            "/v1/media/create", json={"model": "relayed", "prompt": "a harbour", "ar": "9:21"}
        ).json()
        done = wait_for_status(client, made["id"])
        assert done["status"] == "done", done
        assert done["url"].startswith(front.base_url)  # kept in this server's own storage
        assert download(done["url"]).size == (640, 1536)

        stuck = client.post("/v1/media/create", json={"model": "fragile", "prompt": "a pier"})
        stuck_id = stuck.json()["id"]
        wait_for_status(client, stuck_id, ("processing",))
        _upstream_task_ids(down)
        down.stop()  # the upstream goes away while the task waits on it
        failed = wait_for_status(client, stuck_id, timeout=60)
        assert failed["status"] == "failed"
        assert "could not be reached" in failed["message"]
        assert "tried 3 times" in failed["message"]


@pytest.mark.parametrize("status", [429, 503])
async def test_rate_limits_and_server_errors_are_retried(status, monkeypatch):
    with FakeMediaAPI(polls_before_done=0) as fake:
        fake.fail_next(status, times=2)
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [image] = await generate(engine, job(spec))
    assert image.size == (1024, 1024)
    assert [r.path for r in fake.requests][:3] == ["/v1/media/create"] * 3


async def test_an_overloaded_upstream_is_retried(monkeypatch):
    with FakeMediaAPI(polls_before_done=0) as fake:
        fake.fail_next(200, payload={"code": 6, "message": "The server is busy"})
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [image] = await generate(engine, job(spec))
    assert image.size == (1024, 1024)


async def test_server_errors_exhaust_the_retries(monkeypatch):
    with FakeMediaAPI() as fake:
        fake.fail_next(502, times=10)
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "HTTP 502" in str(failure) and "tried 3 times" in str(failure)
    assert len(fake.requests) == 3


async def test_a_request_timeout_fails_after_the_retries(monkeypatch):
    with FakeMediaAPI() as fake:
        fake.stall_next(1.5, times=2)
        engine, spec = relay_engine(
            fake.base_url, FAKE_KEY, monkeypatch, timeout_seconds=0.3, attempts=2
        )
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "did not answer" in str(failure)


async def test_an_upstream_that_never_finishes_times_the_task_out(monkeypatch):
    with FakeMediaAPI(polls_before_done=1000) as fake:
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch, task_timeout_seconds=1.5)
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "did not finish" in str(failure)


# -- a hostile upstream: result links (the spec's outbound rules) -------------------------------


async def test_a_result_link_to_a_private_address_is_refused(monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE_VARIABLE, raising=False)
    with FakeMediaAPI(polls_before_done=0) as fake, FakeMediaAPI() as private:
        fake.result_url = f"{private.base_url}/files/secret.png"
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert str(failure) == (
        "The upstream media service's result link at 127.0.0.1 is not allowed: "
        "it is not a public address."
    )
    assert private.requests == []  # never connected to


async def test_a_redirect_to_a_private_address_is_refused(monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE_VARIABLE, raising=False)
    with FakeMediaAPI(polls_before_done=0) as fake, FakeMediaAPI() as private:
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        target = f"{private.base_url}/files/secret.png"
        original = fake.answer

        def answer(request):
            if request.path.startswith("/files/"):
                return Answer(302, b"", {"Location": target})
            return original(request)

        fake.answer = answer
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "is not allowed: it is not a public address" in str(failure)
    assert private.requests == []


async def test_a_result_link_on_the_base_url_origin_is_trusted(monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE_VARIABLE, raising=False)
    with FakeMediaAPI(polls_before_done=0) as fake:
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [image] = await generate(engine, job(spec))
    assert not isinstance(image, GenerationError), image
    assert image.size == (1024, 1024)


async def test_private_result_links_are_fetched_when_allowed(monkeypatch):
    monkeypatch.setenv(ALLOW_PRIVATE_VARIABLE, "1")
    with FakeMediaAPI(polls_before_done=0) as fake, FakeMediaAPI() as other:
        fake.result_url = f"{other.base_url}/files/elsewhere.png"
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [image] = await generate(engine, job(spec))
    assert not isinstance(image, GenerationError), image
    assert [r.path for r in other.requests] == ["/files/elsewhere.png"]


async def test_a_huge_result_is_abandoned_past_the_size_cap(monkeypatch):
    """A 1 GB answer without a length: read in chunks and dropped past max_bytes."""
    monkeypatch.setenv(ALLOW_PRIVATE_VARIABLE, "1")
    sent = 0

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
        chunk = b"\0" * (1 << 20)
        with contextlib.suppress(ConnectionError):
            while sent < 1 << 30:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        writer.close()

    server = await asyncio.start_server(endless, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with FakeMediaAPI(polls_before_done=0) as fake:
            fake.result_url = f"http://127.0.0.1:{port}/huge.png"
            engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
            [failure] = await generate(engine, job(spec))
    finally:
        server.close()
    assert isinstance(failure, GenerationError)
    limit = relay.RESULT_LIMITS.max_bytes
    assert str(failure) == (
        f"The upstream media service's result link at 127.0.0.1 is over {limit // 1_000_000} MB."
    )
    assert sent < 1 << 30  # abandoned long before the end


async def test_a_decompression_bomb_fails_the_task_once(monkeypatch):
    monkeypatch.delenv(ALLOW_PRIVATE_VARIABLE, raising=False)
    with FakeMediaAPI(polls_before_done=0) as fake:
        fake.result_file = bomb_png()
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "over the limit of 40,000,000 pixels" in str(failure)
    assert "127.0.0.1" in str(failure)
    assert len([r for r in fake.requests if r.path.startswith("/files/")]) == 1  # no retries


# -- a hostile upstream: replies -------------------------------------------------------------


async def outcomes_with_one_poisoned_task(poison: Answer, tasks: int, monkeypatch) -> list:
    """A batch of `tasks` relayed tasks whose first upstream task answers every poll `poison`."""
    with FakeMediaAPI(polls_before_done=1) as fake:
        fake.next_id = "poisoned"
        fake.result_answer = lambda task_id: poison if task_id == "poisoned" else None
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        return await generate(engine, *(job(spec, n=i) for i in range(tasks)))


async def test_a_deeply_nested_reply_fails_only_its_own_task(monkeypatch):
    depth = 100_000
    nested = Answer(200, b'{"code": 0, "id": ' + b"[" * depth + b"]" * depth + b"}")
    outcomes = await outcomes_with_one_poisoned_task(nested, 3, monkeypatch)
    failures = [o for o in outcomes if isinstance(o, GenerationError)]
    assert len(failures) == 1, outcomes
    assert "answered with something other than a task" in str(failures[0])
    assert "tried 3 times" in str(failures[0])
    assert [o.size for o in outcomes if o not in failures] == [(1024, 1024)] * 2


@pytest.mark.parametrize(
    "progress", [float("nan"), float("inf"), float("-inf"), "50%", None, [1], {"a": 1}]
)
async def test_progress_that_is_not_a_number_is_ignored(progress, monkeypatch):
    reports: list[float] = []

    class Recording(BatchMonitor):
        def report(self, fraction: float) -> None:
            reports.append(fraction)
            super().report(fraction)

    with FakeMediaAPI(polls_before_done=2) as fake:
        fake.progress = progress  # sent as it is with each "processing" answer
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        monitor = Recording()
        [image] = await generate(engine, job(spec), monitor=monitor)
    assert not isinstance(image, GenerationError), image
    assert all(math.isfinite(r) and 0.0 <= r <= 1.0 for r in reports), reports
    assert math.isfinite(monitor.progress)


async def test_a_progress_past_a_floats_range_fails_only_its_own_task(monkeypatch):
    huge = Answer(
        200, b'{"code": 0, "id": "x", "status": "processing", "progress": 1' + b"0" * 400 + b"}"
    )
    outcomes = await outcomes_with_one_poisoned_task(huge, 2, monkeypatch)
    failures = [o for o in outcomes if isinstance(o, GenerationError)]
    assert len(failures) == 1, outcomes
    assert "answered with something other than a task" in str(failures[0])


@pytest.mark.parametrize("upstream_id", ["x" * 5000, "abc\ndef", "a\u200bb", "tab\there"])
async def test_an_upstream_task_id_too_long_or_not_printable_is_refused(upstream_id, monkeypatch):
    with FakeMediaAPI(polls_before_done=0) as fake:
        fake.next_id = upstream_id
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        [failure] = await generate(engine, job(spec))
    assert isinstance(failure, GenerationError)
    assert "answered with a task id that is not valid" in str(failure)
    assert upstream_id not in str(failure) and len(str(failure)) < 300
    assert [r.path for r in fake.requests] == ["/v1/media/create"]  # never polled with it


# -- a hostile upstream: the same task id for two tasks --------------------------------------

TWICE = "answered the same task id twice"


async def ended(running: asyncio.Task, seconds: float = 60) -> Any:
    """What `running` returned; fails (rather than hanging the suite) if it never ends."""
    done, _ = await asyncio.wait({running}, timeout=seconds)
    assert running in done, "the relayed tasks never ended"
    return running.result()


async def test_a_task_id_answered_twice_fails_the_second_task_only(monkeypatch):
    with FakeMediaAPI(polls_before_done=1) as fake:
        fake.repeated_id = "twice"
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch)
        batch = [job(spec, n=0), job(spec, n=1)]
        running = asyncio.create_task(engine.generate(batch, BatchMonitor()))
        try:
            outcomes = await ended(running)
            # The engine goes on serving: a later task with a fresh id is relayed.
            fake.repeated_id = None
            running = asyncio.create_task(engine.generate([job(spec, n=2)], BatchMonitor()))
            [later] = await ended(running)
        finally:
            running.cancel()
            await engine.close()
    images = [o for o in outcomes if not isinstance(o, GenerationError)]
    [failure] = [o for o in outcomes if isinstance(o, GenerationError)]
    assert [image.size for image in images] == [(1024, 1024)]
    assert str(failure) == f"The upstream media service {TWICE}; please try again later."
    assert "/v1/media/cancel" not in [r.path for r in fake.requests]  # the first's work goes on
    assert not isinstance(later, GenerationError), later


class HeldPolls:
    """Holds every poll's answer until released: a poll in flight for as long as a test needs."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.held = threading.Event()

    def __call__(self, task_id: str) -> None:
        self.held.set()
        self.released.wait(60)


@pytest.mark.parametrize("ending", ["canceled", "timed out"])
async def test_a_cancel_or_the_timeout_ends_a_task_while_its_poll_waits(ending, monkeypatch):
    polls = HeldPolls()
    with FakeMediaAPI(polls_before_done=0) as fake:
        fake.result_answer = polls
        task_timeout = 2 if ending == "timed out" else 900
        engine, spec = relay_engine(
            fake.base_url,
            FAKE_KEY,
            monkeypatch,
            timeout_seconds=60,
            task_timeout_seconds=task_timeout,
        )
        monitor = BatchMonitor()
        running = asyncio.create_task(engine.generate([job(spec)], monitor))
        try:
            await asyncio.to_thread(polls.held.wait, 60)
            if ending == "canceled":
                monitor.canceled.add("task0")
            [outcome] = await ended(running)
            still_held = not polls.released.is_set()
        finally:
            polls.released.set()
            running.cancel()
            await engine.close()
    assert still_held  # the task ended before its poll was answered
    assert isinstance(outcome, GenerationError)
    assert (
        (str(outcome) == "canceled") if ending == "canceled" else "did not finish" in str(outcome)
    )


def test_a_server_relaying_to_an_upstream_that_repeats_ids_goes_on(tmp_path):
    """Through a real `darkroom serve`: both tasks of a batch end, the worker claims the next
    task, and SIGTERM stops the process."""
    with FakeMediaAPI(polls_before_done=1) as fake:
        fake.repeated_id = "twice"
        catalog = f"""
[models."relayed"]
engine = "relay"
base_url = "{fake.base_url}"
api_key_env = "{KEY_ENV}"
upstream_model = "google-imagen-3"
poll_seconds = 1
poll_max_seconds = 1
max_batch = 2
batch_wait_ms = 3000
"""
        with (
            serving(tmp_path / "front", catalog, {KEY_ENV: FAKE_KEY}) as front,
            client_for(front) as client,
        ):
            ids = [
                client.post("/v1/media/create", json={"model": "relayed", "prompt": p}).json()["id"]
                for p in ("a harbour", "a pier")
            ]
            ends = [wait_for_status(client, task_id, timeout=60) for task_id in ids]
            assert sorted(e["status"] for e in ends) == ["done", "failed"], ends
            [failed] = [e for e in ends if e["status"] == "failed"]
            assert TWICE in failed["message"]

            fake.repeated_id = None
            later = client.post("/v1/media/create", json={"model": "relayed", "prompt": "a quay"})
            assert wait_for_status(client, later.json()["id"], timeout=60)["status"] == "done"

            [process] = front.processes
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)  # uvicorn ends by raising the signal again once stopped
            assert "worker stopped" in front.logs()  # the graceful way: the batch in hand ended


async def test_closing_the_engine_ends_the_tasks_still_waiting(monkeypatch):
    """A pool close or a shutdown while a poll hangs: the waiting task ends, as a server error
    that the worker's retries own (another worker may finish it), and the close returns."""
    polls = HeldPolls()
    with FakeMediaAPI(polls_before_done=0) as fake:
        fake.result_answer = polls
        engine, spec = relay_engine(fake.base_url, FAKE_KEY, monkeypatch, timeout_seconds=60)
        running = asyncio.create_task(engine.generate([job(spec)], BatchMonitor()))
        try:
            await asyncio.to_thread(polls.held.wait, 60)
            closing = asyncio.create_task(engine.close())
            with pytest.raises(PollerClosed):
                await ended(running)
            await ended(closing)
            still_held = not polls.released.is_set()
        finally:
            polls.released.set()
            running.cancel()
    assert still_held  # neither waited for the poll's answer
