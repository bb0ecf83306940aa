"""The worker loop end to end in one process: a real SQLite TaskStore, darkroom.testing's
engine and storage, a Worker on the event loop. Each test asserts what the worker did (which
tasks ended how, which batches the engine was given), never how long it took."""

from __future__ import annotations

import io
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from PIL import Image

from darkroom.db import tasks
from darkroom.engines import GenerationError, Job
from darkroom.storage import result_key
from darkroom.tasks import TaskStatus
from darkroom.testing import function_model, solid_image
from darkroom.worker.loop import ENGINE_FAILED_MESSAGE
from tests.support.inprocess import (
    RETENTION_HOURS,
    WAIT_SECONDS,
    Queue,
    eventually,
    in_process_queue,
)

REFUSED = "The prompt was refused."


def refusing(job: Job) -> Image.Image:
    if "refuse" in job.prompt:
        raise GenerationError(REFUSED)
    return solid_image(job)


def broken(job: Job) -> Image.Image:
    raise RuntimeError("the device fell over")


def held_until(release: threading.Event) -> Callable[[Job], Image.Image]:
    """An image function that blocks each job until the test sets `release`."""

    def paint(job: Job) -> Image.Image:
        assert release.wait(WAIT_SECONDS), "the test never released the engine"
        return solid_image(job)

    return paint


@pytest.fixture
def release() -> threading.Event:
    return threading.Event()


@pytest.fixture
async def queue(tmp_path: Path, release: threading.Event) -> AsyncIterator[Queue]:
    models = [
        function_model("fake"),
        function_model("batched", max_batch=3),
        function_model("refusing", refusing, max_batch=2),
        function_model("broken", broken),
        function_model("filling", max_batch=2, batch_wait_ms=60_000),
        function_model("held", held_until(release)),
    ]
    async with in_process_queue(tmp_path, *models) as queue:
        try:
            yield queue
        finally:
            release.set()  # a failed test must not leave a thread blocked


async def test_a_task_is_done_with_its_image_in_storage_under_its_result_key(queue: Queue) -> None:
    created = await queue.add(7, size=48)
    async with queue.worker():
        task = await queue.finished(created.id)
    assert task.status is TaskStatus.DONE and task.progress == 100
    assert task.result_key == result_key(task.id, RETENTION_HOURS)
    stored = queue.storage.files[task.result_key]
    assert stored.content_type == "image/webp"
    image = Image.open(io.BytesIO(stored.data)).convert("RGB")
    assert image.size == (48, 48)
    expected = solid_image(Job(task.id, "", 48, 48, seed=7)).getpixel((0, 0))
    assert all(abs(a - b) <= 8 for a, b in zip(image.getpixel((24, 24)), expected, strict=True))


async def test_a_generation_error_fails_only_its_own_task_without_a_retry(queue: Queue) -> None:
    kept = await queue.add(0, "refusing")
    refused = await queue.add(1, "refusing", prompt="refuse me")
    async with queue.worker():
        refused_after = await queue.finished(refused.id)
        kept_after = await queue.finished(kept.id)
    assert refused_after.status is TaskStatus.FAILED and refused_after.message == REFUSED
    assert refused_after.attempt == 1
    assert kept_after.status is TaskStatus.DONE
    assert (await queue.engine("refusing")).batch_sizes == [2]  # one call for both


async def test_an_engine_exception_retries_the_task_then_fails_it_after_max_attempts(
    queue: Queue,
) -> None:
    created = await queue.add(0, "broken", max_attempts=2)
    async with queue.worker():
        await eventually(lambda: back_in_queue(queue, created.id), "the first attempt to fail")
        await make_due(queue, created.id)  # skip the retry delay
        task = await queue.finished(created.id)
    assert task.status is TaskStatus.FAILED
    assert task.message == ENGINE_FAILED_MESSAGE.format(attempts=2)
    assert (await queue.engine("broken")).batch_sizes == [1, 1]


async def back_in_queue(queue: Queue, task_id: str) -> bool:
    task = await queue.task(task_id)
    return task.status is TaskStatus.IDLE and task.attempt == 1


async def make_due(queue: Queue, task_id: str) -> None:
    async with queue.db.write() as conn:
        await conn.execute(tasks.update().where(tasks.c.id == task_id).values(run_after=0))


async def test_a_task_canceled_before_its_claim_never_reaches_the_engine(queue: Queue) -> None:
    canceled = await queue.add(0)
    later = await queue.add(1)
    await queue.store.cancel(canceled.id, queue.key.id)
    async with queue.worker():
        await queue.finished(later.id)
    after = await queue.task(canceled.id)
    assert after.status is TaskStatus.FAILED and after.message == "canceled"
    assert after.attempt == 0
    assert [batch.task_ids for batch in (await queue.engine()).batches] == [[later.id]]


async def test_tasks_of_one_batch_key_share_an_engine_call_up_to_max_batch(queue: Queue) -> None:
    same = [await queue.add(index, "batched", size=64) for index in range(4)]
    other_size = await queue.add(4, "batched", size=32)
    async with queue.worker():
        for task in [*same, other_size]:
            assert (await queue.finished(task.id)).status is TaskStatus.DONE
    batches = [batch.task_ids for batch in (await queue.engine("batched")).batches]
    ids = [task.id for task in same]
    assert batches == [ids[:3], ids[3:], [other_size.id]]  # oldest first, one size per call


async def test_a_filling_batch_takes_a_task_that_arrives_while_it_waits(queue: Queue) -> None:
    first = await queue.add(0, "filling")
    async with queue.worker():
        await eventually(lambda: is_processing(queue, first.id), "the first task's claim")
        second = await queue.add(1, "filling")
        for task in (first, second):
            await queue.finished(task.id)
    # Full at two, the batch ran without waiting out its batch_wait_ms (a minute).
    assert (await queue.engine("filling")).batch_sizes == [2]


async def is_processing(queue: Queue, task_id: str) -> bool:
    return (await queue.task(task_id)).status is TaskStatus.PROCESSING


async def test_a_cancel_while_the_engine_runs_reaches_its_monitor_and_ends_the_task(
    queue: Queue, release: threading.Event
) -> None:
    created = await queue.add(0, "held")
    engine = await queue.engine("held")
    # A short lease makes a short heartbeat tick: the cancel reaches the monitor sooner.
    async with queue.worker(lease_seconds=0.6):
        await eventually(lambda: engine.batches, "the engine's batch")
        await queue.store.cancel(created.id, queue.key.id)
        monitor = engine.batches[0].monitor
        await eventually(lambda: monitor.is_canceled(created.id), "the cancel to reach it")
        release.set()
        task = await queue.finished(created.id)
    assert task.status is TaskStatus.FAILED and task.message == "canceled"
    assert task.result_key is None and not queue.storage.files


async def test_a_stopped_worker_finishes_its_batch_and_claims_nothing_more(
    queue: Queue, release: threading.Event
) -> None:
    running = await queue.add(0, "held")
    waiting = await queue.add(1, "fake")
    engine = await queue.engine("held")
    async with queue.worker() as worker:
        await eventually(lambda: engine.batches, "the engine's batch")
        worker.stop()
        release.set()
    assert (await queue.task(running.id)).status is TaskStatus.DONE
    assert (await queue.task(waiting.id)).status is TaskStatus.IDLE
