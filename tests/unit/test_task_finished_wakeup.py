"""The "task finished" announcement in one process: the worker announces each task it
finishes, a waiting generate call's event is set for its own task only, and a relisten wakes
every watcher. Tests wait on the events with a bound for a hung test, never a measure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from darkroom.engines import GenerationError, Job
from darkroom.tasks import TaskStatus
from darkroom.testing import function_model, solid_image
from darkroom.worker import Wakeup
from tests.support.inprocess import WAIT_SECONDS, Queue, in_process_queue


def refusing(job: Job) -> Image.Image:
    if "refuse" in job.prompt:
        raise GenerationError("The prompt was refused.")
    return solid_image(job)


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[Queue]:
    async with in_process_queue(tmp_path, function_model("fake", refusing)) as queue:
        yield queue


async def test_the_worker_announces_a_done_task_and_a_failed_one(queue: Queue) -> None:
    wakeup = Wakeup()
    done, failed = await queue.add(0), await queue.add(1, prompt="refuse me")
    with wakeup.watching(done.id) as done_ended, wakeup.watching(failed.id) as failed_ended:
        async with queue.worker(wakeup=wakeup):
            await asyncio.wait_for(done_ended.wait(), WAIT_SECONDS)
            await asyncio.wait_for(failed_ended.wait(), WAIT_SECONDS)
    assert (await queue.task(done.id)).status is TaskStatus.DONE
    assert (await queue.task(failed.id)).status is TaskStatus.FAILED


async def test_a_watcher_is_woken_for_its_own_task_only() -> None:
    wakeup = Wakeup()
    with wakeup.watching("a" * 24) as mine, wakeup.watching("b" * 24) as other:
        wakeup.finished("b" * 24)
        assert other.is_set() and not mine.is_set()


async def test_waking_every_watcher_reaches_all_of_them() -> None:
    wakeup = Wakeup()
    with wakeup.watching("a" * 24) as first, wakeup.watching("a" * 24) as second:
        wakeup.wake_watchers()
        assert first.is_set() and second.is_set()


async def test_a_watcher_that_left_is_not_woken() -> None:
    wakeup = Wakeup()
    with wakeup.watching("a" * 24) as left:
        pass
    wakeup.finished("a" * 24)
    assert not left.is_set()


def test_in_one_process_the_safety_poll_is_the_poll_given() -> None:
    # Workers in another process on the same SQLite file cannot announce anything.
    assert Wakeup().safety_poll(1.0) == 1.0
