"""The store's transitions as a worker meets them, on SQLite: a claim takes a lease on tasks of
one batch key, only the lease's holder may finish the task (a worker that lost its lease is
refused), a release gives tasks back unstarted, and expired leases go back to the queue or,
after the last attempt, fail. (tests/integration holds the suite every database runs.)"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from darkroom.tasks import TaskStatus
from darkroom.tasks.store import LEASE_LOST_MESSAGE
from tests.support.inprocess import Queue, in_process_queue

OWNER, OTHER = "worker-a", "worker-b"
EXPIRED = -1.0  # lease seconds that make a lease expired at once


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[Queue]:
    async with in_process_queue(tmp_path) as queue:
        yield queue


async def test_a_claim_leases_the_oldest_tasks_of_one_batch_key_to_its_owner(queue: Queue) -> None:
    first, _other_size, second = (
        await queue.add(0, size=64),
        await queue.add(1, size=32),
        await queue.add(2, size=64),
    )
    before = time.time()
    claimed = await queue.store.claim(OWNER, limit=5, lease_seconds=30)
    assert [task.id for task in claimed] == [first.id, second.id]
    for task in claimed:
        assert task.status is TaskStatus.PROCESSING and task.lease_owner == OWNER
        assert task.attempt == 1 and task.lease_expires_at >= before + 30


async def test_a_leased_task_is_not_claimed_again(queue: Queue) -> None:
    await queue.add(0)
    assert len(await queue.store.claim(OWNER, limit=1, lease_seconds=30)) == 1
    assert await queue.store.claim(OTHER, limit=1, lease_seconds=30) == []


async def test_a_claim_takes_no_more_than_its_limit_and_only_its_models(queue: Queue) -> None:
    for index in range(3):
        await queue.add(index)
    other_model = await queue.add(3, "other")
    claimed = await queue.store.claim(OWNER, limit=2, lease_seconds=30, models=["other"])
    assert [task.id for task in claimed] == [other_model.id]
    assert len(await queue.store.claim(OWNER, limit=2, lease_seconds=30)) == 2


async def test_a_worker_that_lost_its_lease_cannot_finish_the_task(queue: Queue) -> None:
    await queue.add(0)
    [stale] = await queue.store.claim(OWNER, limit=1, lease_seconds=EXPIRED)
    assert await queue.store.requeue_expired() == (1, 0)
    [current] = await queue.store.claim(OTHER, limit=1, lease_seconds=30)
    assert current.attempt == 2
    assert not await queue.store.complete(stale, OWNER, "stale.webp")
    assert await queue.store.fail(stale, OWNER, "late", retry=False) is None
    assert await queue.store.complete(current, OTHER, "current.webp")
    after = await queue.task(current.id)
    assert after.status is TaskStatus.DONE and after.result_key == "current.webp"
    assert after.lease_owner is None


async def test_a_release_gives_tasks_back_unstarted(queue: Queue) -> None:
    created = await queue.add(0)
    claimed = await queue.store.claim(OWNER, limit=1, lease_seconds=30)
    assert await queue.store.release(claimed, OTHER) == 0  # not OTHER's to give back
    assert await queue.store.release(claimed, OWNER) == 1
    after = await queue.task(created.id)
    assert after.status is TaskStatus.IDLE and after.attempt == 0 and after.lease_owner is None
    [again] = await queue.store.claim(OTHER, limit=1, lease_seconds=30)
    assert again.id == created.id and again.attempt == 1


async def test_an_expired_lease_fails_the_task_after_its_last_attempt(queue: Queue) -> None:
    created = await queue.add(0, max_attempts=1)
    await queue.store.claim(OWNER, limit=1, lease_seconds=EXPIRED)
    assert await queue.store.requeue_expired() == (0, 1)
    after = await queue.task(created.id)
    assert after.status is TaskStatus.FAILED and after.message == LEASE_LOST_MESSAGE


async def test_a_live_lease_is_not_requeued(queue: Queue) -> None:
    created = await queue.add(0)
    await queue.store.claim(OWNER, limit=1, lease_seconds=30)
    assert await queue.store.requeue_expired() == (0, 0)
    assert (await queue.task(created.id)).status is TaskStatus.PROCESSING


async def test_a_failure_worth_retrying_waits_before_its_next_claim(queue: Queue) -> None:
    created = await queue.add(0)
    [task] = await queue.store.claim(OWNER, limit=1, lease_seconds=30)
    assert await queue.store.fail(task, OWNER, "engine error", retry=True) is TaskStatus.IDLE
    after = await queue.task(created.id)
    assert after.status is TaskStatus.IDLE and after.run_after > time.time()
    assert await queue.store.claim(OWNER, limit=1, lease_seconds=30) == []
