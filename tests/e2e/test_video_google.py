"""Veo through the google engine (google-genai) against a local server speaking Vertex AI's
long-running operations (tests/support/fakes/google_veo.py): the operation polled until done,
the clip read from it and answered as a real MP4 by the real server; one poller serves many
tasks; a filtered clip and a failed operation fail their own tasks with their messages;
`max_in_flight` bounds the operations outstanding at once (2 by default), the tasks beyond it
waiting their turn, or their cancel."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import pytest

from darkroom.engines import BatchMonitor, GenerationError, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.media import EncodedVideo
from darkroom.errors import TaskCanceled
from tests.support.fakes.google_ai import LOCATION, PROJECT
from tests.support.fakes.google_veo import BLOCKED_WORD, CLIP_FRAMES, FAILED_WORD, FakeVeo
from tests.support.fakes.serving import client_for, serving
from tests.support.servers import wait_for_status

ENTRY = {
    "engine": "google",
    "kind": "video",
    "upstream_model": "veo-3.0-generate-001",
    "project": PROJECT,
    "location": LOCATION,
    "poll_seconds": 1,
    "poll_max_seconds": 1,
    "retry_initial_seconds": 0.01,
}


@pytest.fixture(autouse=True)
def no_google_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("GOOGLE_CLOUD_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS", "GEMINI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no gcloud credentials of the machine's user


@pytest.fixture
def fake() -> Iterator[FakeVeo]:
    with FakeVeo(polls_before_done=1) as server:
        yield server


def entry(fake: FakeVeo, tmp_path: Path) -> dict:
    account = str(fake.service_account_file(tmp_path))
    return {**ENTRY, "base_url": fake.base_url, "credentials_file": account}


def engine_for(fake: FakeVeo, tmp_path: Path, **options: object):
    spec = Catalog.from_dict({"veo-3": {**entry(fake, tmp_path), **options}})["veo-3"]
    return load_engine(spec, tmp_path)


def job(n: int, prompt: str = "waves at dawn") -> Job:
    return Job(task_id=f"{n:024x}", prompt=prompt, width=1408, height=768, seed=n)


def frames_of(data: bytes) -> int:
    with av.open(io.BytesIO(data)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_one_poller_reads_many_operations_and_each_clip_is_downloaded(
    fake: FakeVeo, tmp_path: Path
) -> None:
    engine = engine_for(fake, tmp_path)

    async def run() -> list:
        try:
            return await engine.generate([job(1), job(2), job(3)], BatchMonitor())
        finally:
            await engine.close()

    clips = asyncio.run(run())
    assert all(isinstance(clip, EncodedVideo) for clip in clips)
    assert [frames_of(clip.data) for clip in clips] == [CLIP_FRAMES] * 3
    assert [body["parameters"]["aspectRatio"] for body in fake.created] == ["16:9"] * 3
    assert fake.polls == 6  # each operation read twice: running, then done


def test_a_filtered_clip_and_a_failed_operation_fail_their_tasks_alone(
    fake: FakeVeo, tmp_path: Path
) -> None:
    engine = engine_for(fake, tmp_path)
    jobs = [job(1, f"a {BLOCKED_WORD} scene"), job(2, f"an {FAILED_WORD} scene"), job(3)]

    async def run() -> list:
        try:
            return await engine.generate(jobs, BatchMonitor())
        finally:
            await engine.close()

    filtered, failed, made = asyncio.run(run())
    assert isinstance(filtered, GenerationError) and "code 1002" in filtered.message
    assert isinstance(failed, GenerationError) and "could not make the video" in failed.message
    assert isinstance(made, EncodedVideo)


def test_a_veo_task_answers_an_mp4_through_the_real_server(fake: FakeVeo, tmp_path: Path):
    lines = [f"{k} = {json.dumps(v)}" for k, v in entry(fake, tmp_path).items()]
    catalog = '[models."veo-3"]\n' + "\n".join(lines) + "\n"
    with (
        serving(tmp_path / "front", catalog) as front,
        client_for(front) as client,
    ):
        made = client.post(
            "/v1/media/create", json={"model": "veo-3", "prompt": "waves", "ar": "9:16"}
        ).json()
        done = wait_for_status(client, made["id"])
        assert done["status"] == "done", done
        response = httpx.get(done["url"], timeout=30)
        assert response.headers["content-type"] == "video/mp4"
        assert frames_of(response.content) == CLIP_FRAMES
        assert fake.created[0]["parameters"]["aspectRatio"] == "9:16"


def test_a_canceled_veo_task_stops_waiting_for_its_operation(tmp_path: Path) -> None:
    with FakeVeo(polls_before_done=10_000) as endless:
        engine = engine_for(endless, tmp_path)
        monitor = BatchMonitor()

        async def run() -> list:
            try:
                running = asyncio.ensure_future(engine.generate([job(1)], monitor))
                while endless.polls < 1:  # the operation was started and read once
                    await asyncio.sleep(0.05)
                monitor.canceled.add(job(1).task_id)
                return await running
            finally:
                await engine.close()

        [outcome] = asyncio.run(run())
    assert isinstance(outcome, TaskCanceled)


# -- max_in_flight: operations outstanding upstream -----------------------------------------


def test_at_most_two_operations_run_at_once_by_default_and_every_task_finishes(tmp_path):
    with FakeVeo(polls_before_done=2) as fake:
        engine = engine_for(fake, tmp_path)

        async def run() -> list:
            try:
                return await engine.generate([job(n) for n in range(5)], BatchMonitor())
            finally:
                await engine.close()

        clips = asyncio.run(run())
    assert [type(clip) for clip in clips] == [EncodedVideo] * 5
    assert len(fake.operations) == 5
    assert fake.most_outstanding == 2  # the default max_in_flight of a video model
    assert fake.outstanding == 0


def test_a_task_canceled_while_it_waits_for_a_place_ends_and_never_starts_an_operation(
    tmp_path: Path,
) -> None:
    with FakeVeo(polls_before_done=10_000) as endless:
        engine = engine_for(endless, tmp_path, max_in_flight=1)
        first, second = BatchMonitor(), BatchMonitor()  # two workers' batches, one task each

        async def run() -> tuple[list, bool]:
            try:
                holding = asyncio.ensure_future(engine.generate([job(1)], first))
                while endless.polls < 1:  # the first operation runs: it holds the one place
                    await asyncio.sleep(0.05)
                waiting = asyncio.ensure_future(engine.generate([job(2)], second))
                polled = endless.polls
                while endless.polls < polled + 2:  # time enough for it to start, were it let
                    await asyncio.sleep(0.05)
                second.canceled.add(job(2).task_id)
                outcome = await asyncio.wait_for(waiting, 30)
                still_running = not holding.done()
                first.canceled.add(job(1).task_id)
                await holding
                return outcome, still_running
            finally:
                await engine.close()

        [outcome], first_still_running = asyncio.run(run())
    assert isinstance(outcome, TaskCanceled)
    assert first_still_running  # the canceled task ended while the place was still taken
    assert len(endless.operations) == 1  # and it never started an operation


def test_an_operation_past_the_task_timeout_fails_its_task_with_a_plain_message(tmp_path):
    with FakeVeo(polls_before_done=10_000) as endless:
        engine = engine_for(endless, tmp_path, task_timeout_seconds=2)

        async def run() -> list:
            try:
                return await engine.generate([job(1)], BatchMonitor())
            finally:
                await engine.close()

        [outcome] = asyncio.run(run())
    assert isinstance(outcome, GenerationError)
    assert "did not finish the video in 2 s" in outcome.message
