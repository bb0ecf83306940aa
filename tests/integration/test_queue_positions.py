"""Queue positions from a snapshot of the idle queue (tasks/positions.py), on every backend:
exact after this process's own creates, claims and cancels; another process's changes within
the snapshot's age; a task past the snapshot's limit counted in the database."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from darkroom.db import Database
from darkroom.keys import ApiKey, KeyStore
from darkroom.tasks import Task, TaskStore
from darkroom.tasks.positions import QueuePositions
from tests.support.tasks import DATABASES, migrated_database, new_task

LONG = 3600.0  # a snapshot that never ages during a test


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    database = await migrated_database(request, tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
async def key(db: Database) -> ApiKey:
    return (await KeyStore(db).create("positions"))[1]


async def add(store: TaskStore, key: ApiKey, count: int, start: int = 0) -> list[Task]:
    return [await store.create(new_task(key, start + i), key, max_queue=1000) for i in range(count)]


async def positions_of(store: TaskStore, created: list[Task]) -> list[int]:
    return [await store.queue_position(task) for task in created]


async def test_this_stores_own_creates_claims_and_cancels_show_at_once(db, key):
    store = TaskStore(db)
    created = await add(store, key, 4)
    assert await positions_of(store, created) == [0, 1, 2, 3]
    created += await add(store, key, 1, start=4)  # after the snapshot was read
    assert await store.queue_position(created[4]) == 4
    await store.cancel(created[1].id, key.id)
    [claimed] = await store.claim("w", limit=1, lease_seconds=30)
    assert claimed.id == created[0].id
    assert await positions_of(store, created[2:]) == [0, 1, 2]


async def test_another_stores_changes_show_once_the_snapshot_ages(db, key):
    lagging, aging = (
        TaskStore(db, queue_snapshot_seconds=LONG),
        TaskStore(db, queue_snapshot_seconds=0.2),
    )
    created = await add(TaskStore(db), key, 3)
    assert [await s.queue_position(created[2]) for s in (lagging, aging)] == [2, 2]
    await TaskStore(db).claim("w", limit=2, lease_seconds=30)
    assert await lagging.queue_position(created[2]) == 2  # the snapshot's documented lag
    await asyncio.sleep(0.3)
    assert await aging.queue_position(created[2]) == 0


async def test_a_task_past_the_snapshots_limit_is_counted(db, key):
    created = await add(TaskStore(db), key, 5)
    positions = QueuePositions(db, limit=2)
    assert [await positions.of(task) for task in created] == [0, 1, 2, 3, 4]


async def test_a_snapshot_read_in_pages_is_the_whole_queue_in_order(db, key):
    store = TaskStore(db)
    created = await add(store, key, 7)
    await store.cancel(created[3].id, key.id)
    waiting = [task for task in created if task.id != created[3].id]
    # Two more enqueued at the same instant: a page may end between them, and neither is lost.
    same = waiting[-1].enqueued_at + 1
    for index in (7, 8):
        tied = dataclasses.replace(new_task(key, index), enqueued_at=same)
        waiting.append(await store.create(tied, key, max_queue=1000))
    for page, limit in ((2, 100), (3, 100), (1, 100), (2, 5)):
        positions = QueuePositions(db, max_age=LONG, page=page, limit=limit)
        answers = [await positions.of(task) for task in waiting]
        assert answers == [0, 1, 2, 3, 4, 5, 6, 6], page  # tied tasks have the same ahead
        assert len(positions._order) == min(limit, 8)


async def test_a_change_made_while_the_snapshot_is_read_is_not_lost(db, key):
    store = TaskStore(db)
    first, second = await add(store, key, 2)
    positions = QueuePositions(db, max_age=LONG)
    reading = asyncio.create_task(positions.of(second))
    await asyncio.sleep(0)  # the read has started and waits for the database
    late = (await add(TaskStore(db), key, 1, start=2))[0]
    positions.added(late)  # what this process's create tells it, mid-read
    positions.removed([first])  # and a claim, mid-read
    assert await reading in (0, 1)  # read before or after the claim: either is right
    assert await positions.of(late) == 1  # only `second` is ahead of it
    assert await positions.of(second) == 0
