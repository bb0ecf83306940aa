"""The outbox on SQLite, as the store and the senders meet it: a delivery is written when a
task with a callback URL ends (done, failed, canceled), never when it only goes back to the
queue; a claimed delivery is held by one sender until its lease runs out; and a sender whose
lease ran out cannot move a delivery another sender has taken since."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from darkroom.webhooks.outbox import DELIVERED, PENDING, Attempt, Outbox
from tests.support.inprocess import Queue, in_process_queue

URL = "https://example.com/hook"
OWNER, OTHER = "sender-a", "sender-b"
EXPIRED = -1.0  # lease seconds that make a lease expired at once


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[Queue]:
    async with in_process_queue(tmp_path) as queue:
        yield queue


async def claimed_task(queue: Queue, index: int = 0, **fields):
    await queue.add(index, callback_url=URL, **fields)
    (task,) = await queue.store.claim("worker", limit=1, lease_seconds=30)
    return task


async def test_an_end_is_delivered_and_a_retry_is_not(queue: Queue) -> None:
    outbox = Outbox(queue.db)
    task = await claimed_task(queue)
    await queue.store.fail(task, "worker", "flaky", retry=True)  # back in the queue
    assert (await outbox.of_task(task.id))[0] is None
    await queue.store.cancel(task.id, queue.key.id)  # ends it
    delivery, attempts = await outbox.of_task(task.id)
    assert delivery is not None and delivery.url == URL and delivery.status == PENDING
    assert attempts == []


async def test_a_done_task_is_delivered_and_one_without_a_callback_is_not(queue: Queue) -> None:
    outbox = Outbox(queue.db)
    task = await claimed_task(queue)
    assert await queue.store.complete(task, "worker", "result-key")
    assert (await outbox.of_task(task.id))[0] is not None
    plain = await queue.add(1)
    await queue.store.cancel(plain.id, queue.key.id)
    assert (await outbox.of_task(plain.id))[0] is None


async def test_a_canceled_idle_task_is_delivered(queue: Queue) -> None:
    task = await queue.add(0, callback_url=URL)
    await queue.store.cancel(task.id, queue.key.id)
    delivery, _ = await Outbox(queue.db).of_task(task.id)
    assert delivery is not None and delivery.key_id == queue.key.id


async def test_a_claimed_delivery_is_one_senders_until_its_lease_runs_out(queue: Queue) -> None:
    outbox = Outbox(queue.db)
    for index in range(5):
        task = await queue.add(index, callback_url=URL)
        await queue.store.cancel(task.id, queue.key.id)
    first, second = await asyncio.gather(
        outbox.claim(OWNER, limit=3, lease_seconds=30),
        outbox.claim(OTHER, limit=3, lease_seconds=30),
    )
    assert len(first) + len(second) == 5
    assert not {d.task_id for d in first} & {d.task_id for d in second}
    assert await outbox.claim(OTHER, limit=10, lease_seconds=30) == []
    assert not await outbox.any_due()


async def test_a_sender_that_lost_its_lease_cannot_move_the_delivery(queue: Queue) -> None:
    outbox = Outbox(queue.db)
    task = await queue.add(0, callback_url=URL)
    await queue.store.cancel(task.id, queue.key.id)
    (late,) = await outbox.claim(OWNER, limit=1, lease_seconds=EXPIRED)
    (taken,) = await outbox.claim(OTHER, limit=1, lease_seconds=30)
    made = Attempt(1, 0.0, 200, 5)
    assert not await outbox.record(late, OWNER, made, status=DELIVERED, next_at=0.0)
    assert await outbox.record(taken, OTHER, made, status=DELIVERED, next_at=0.0)
    delivery, attempts = await outbox.of_task(task.id)
    assert delivery is not None and delivery.status == DELIVERED and delivery.attempts == 1
    assert len(attempts) == 2  # both were made, and both are shown
