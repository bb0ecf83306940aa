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
from darkroom.maintenance import SERVICE
from darkroom.tasks import TaskStatus
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
