"""The task store's cancel rules, on SQLite and PostgreSQL: a task its owner canceled while it
ran is never put back in the queue, whether its worker gives it back after an engine error or
releases it on shutdown; it ends "canceled" and its credit comes back."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from darkroom.db import Database
from darkroom.db.migrate import migrate
from darkroom.keys import KeyStore
from darkroom.tasks import TaskStatus, TaskStore
from tests.support.tasks import async_url, new_task

OWNER = "worker-under-test"


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        database = Database(async_url(request.getfixturevalue("postgres")))
    await migrate(database)
    yield database
    await database.dispose()


async def running_then_canceled(db: Database):
    keys, store = KeyStore(db), TaskStore(db)
    _, key = await keys.create("unit", credits=5)
    created = await store.create(new_task(key, 0), key, max_queue=10)
    [task] = await store.claim(OWNER, limit=1, lease_seconds=30)
    assert task.id == created.id
    canceled = await store.cancel(task.id, key.id)
    assert canceled.status is TaskStatus.PROCESSING and canceled.cancel_requested
    return keys, store, key, task


async def credits_of(keys: KeyStore, key_id: int) -> int | None:
    return next(k.credits for k in await keys.list() if k.id == key_id)


async def test_an_engine_error_after_a_cancel_ends_the_task_instead_of_retrying(db):
    keys, store, key, task = await running_then_canceled(db)
    assert await store.fail(task, OWNER, "engine error", retry=True) is TaskStatus.FAILED
    after = await store.get(task.id)
    assert after.status is TaskStatus.FAILED and after.message == "canceled"
    assert await store.claim(OWNER, limit=1, lease_seconds=30) == []
    assert await credits_of(keys, key.id) == 5


async def test_a_release_after_a_cancel_ends_the_task_instead_of_requeueing_it(db):
    keys, store, key, task = await running_then_canceled(db)
    await store.release([task], OWNER)
    after = await store.get(task.id)
    assert after.status is TaskStatus.FAILED and after.message == "canceled"
    assert await store.claim(OWNER, limit=1, lease_seconds=30) == []
    assert await credits_of(keys, key.id) == 5


async def test_a_task_not_canceled_still_goes_back_to_the_queue(db):
    keys = KeyStore(db)
    store = TaskStore(db)
    _, key = await keys.create("unit", credits=5)
    await store.create(new_task(key, 0), key, max_queue=10)
    [task] = await store.claim(OWNER, limit=1, lease_seconds=30)
    await store.release([task], OWNER)
    assert (await store.get(task.id)).status is TaskStatus.IDLE
    assert await credits_of(keys, key.id) == 4
