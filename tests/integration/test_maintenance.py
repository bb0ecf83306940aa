"""Maintenance runs on one node at a time, on SQLite and PostgreSQL: of two services on one
database only one leads; the other takes over when the leader stops (at once) or dies (after
its lease); only the leader rescues expired leases and sweeps expired results."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest

from darkroom.app import App
from darkroom.config import Settings
from darkroom.db import Database
from darkroom.db.leader import LeaderLease
from darkroom.keys import ApiKey, KeyStore
from darkroom.maintenance import SERVICE
from darkroom.retention import sweep_once
from darkroom.tasks import Idempotency, Task, TaskStatus, TaskStore
from tests.support.tasks import DATABASES, migrated_database, new_task

LEASE_SECONDS = 1.0


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    database = await migrated_database(request, tmp_path)
    yield database
    await database.dispose()


@pytest.fixture
async def apps(db: Database, tmp_path: Path) -> AsyncIterator[list[App]]:
    """Two nodes of one installation, sharing its database (and, here, its data folder)."""
    settings = Settings(
        data_dir=tmp_path,
        database_url=db.url,
        lease_seconds=LEASE_SECONDS,
        sweep_seconds=0.5,
        retention_hours=0,  # every result is past retention as soon as it is made
    )
    nodes = [App.from_settings(settings), App.from_settings(settings)]
    yield nodes
    for node in nodes:
        await node.close()


async def until(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def leaders(nodes: list[App]) -> list[App]:
    return [node for node in nodes if node.maintenance and node.maintenance.leading]


async def test_of_two_services_one_leads_and_the_other_takes_over_when_it_stops(apps):
    for node in apps:
        node.start_maintenance()
    await until(lambda: len(leaders(apps)) == 1)
    for _ in range(3 * int(LEASE_SECONDS / 0.25)):  # over several renewals: never two
        assert len(leaders(apps)) == 1
        await asyncio.sleep(0.25)
    [leader] = leaders(apps)
    [follower] = [node for node in apps if node is not leader]
    stopped_at = time.monotonic()
    await leader.stop_maintenance()
    await until(lambda: leaders(apps) == [follower])
    assert time.monotonic() - stopped_at < LEASE_SECONDS + 1  # given up, not left to lapse


async def test_a_leader_that_dies_is_replaced_after_its_lease(db):
    first = LeaderLease(db, SERVICE, "first", seconds=LEASE_SECONDS)
    second = LeaderLease(db, SERVICE, "second", seconds=LEASE_SECONDS)
    assert await first.take() is True
    assert await second.take() is False
    assert await first.take() is True  # renewed
    await asyncio.sleep(LEASE_SECONDS / 2)
    assert await second.take() is False  # the renewal holds
    await asyncio.sleep(LEASE_SECONDS)  # the first renews no more: it died
    assert await second.take() is True
    assert await first.take() is False  # a leader back from the dead does not lead


async def test_the_leader_rescues_expired_leases_and_sweeps_expired_results(apps):
    node = apps[0]
    await node.migrate()
    _, key = await node.keys.create("unit", balance=Decimal(2))
    await node.store.create(new_task(key, 0), key, max_queue=10)
    await node.store.create(new_task(key, 1), key, max_queue=10)
    orphan, old = await node.store.claim("dead-worker", limit=2, lease_seconds=-1)
    await node.storage.put("exp1h/old_result.webp", b"RIFF", "image/webp")
    assert await node.store.complete(old, "dead-worker", "exp1h/old_result.webp")
    node.start_maintenance()

    async def rescued_and_swept() -> bool:
        task, swept = await node.store.get(orphan.id), await node.store.get(old.id)
        assert task is not None and swept is not None
        return task.status is TaskStatus.IDLE and swept.purged_at is not None

    deadline = time.monotonic() + 30
    while not await rescued_and_swept():
        assert time.monotonic() < deadline, "not rescued and swept"
        await asyncio.sleep(0.1)
    assert node.maintenance is not None and node.maintenance.leading


async def churn(store: TaskStore, key: ApiKey, count: int, start: int = 0) -> list[Task]:
    """Tasks created with an idempotency key each and canceled at once."""
    canceled = []
    for index in range(start, start + count):
        again = Idempotency(f"retry-{index}", "a" * 64)
        task = await store.create(new_task(key, index), key, max_queue=1000, idempotency=again)
        canceled.append(await store.cancel(task.id, key.id))
    return canceled


async def test_old_records_are_deleted_in_batches_with_their_idempotency_records(db):
    store = TaskStore(db)
    _, key = await KeyStore(db).create("churn")
    canceled = await churn(store, key, 25)
    waiting = await store.create(new_task(key, 100), key, max_queue=100)
    later = time.time() + 1
    assert [await store.delete_finished(later, limit=10) for _ in range(4)] == [10, 10, 5, 0]
    assert [await store.get(t.id) for t in canceled] == [None] * 25
    assert await store.get(waiting.id) is not None  # not finished: kept
    # Their idempotency keys are free again: the same key with another body makes a task.
    other = Idempotency("retry-0", "b" * 64)
    again = await store.create(new_task(key, 200), key, max_queue=100, idempotency=other)
    assert again.id not in {t.id for t in canceled}


async def test_the_sweep_keeps_records_until_they_are_past_their_own_retention(db, tmp_path):
    node = App.from_settings(Settings(data_dir=tmp_path, database_url=db.url))
    store = TaskStore(db)
    _, key = await node.keys.create("churn")
    old = await churn(store, key, 5)
    await asyncio.sleep(0.3)
    recent = await churn(store, key, 2, start=10)
    await store.create(new_task(key, 20), key, max_queue=100)
    [running] = await store.claim("w", limit=1, lease_seconds=30)
    await node.storage.put("exp1h/result.webp", b"RIFF", "image/webp")
    assert await store.complete(running, "w", "exp1h/result.webp")
    # Records are kept 0.2 s after their file expired (at once, here) or after they failed.
    await sweep_once(store, node.storage, 0.0, record_retention_seconds=0.2)
    assert [await store.get(t.id) for t in old] == [None] * 5
    assert None not in [await store.get(t.id) for t in recent]
    # The done task's file was purged by this sweep; its record goes at a later one.
    assert (await store.get(running.id)).purged_at is not None
    await asyncio.sleep(0.3)
    await sweep_once(store, node.storage, 0.0, record_retention_seconds=0.2)
    assert await store.get(running.id) is None
    await node.close()
