"""Task records for store tests, on any database."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from darkroom.db import Database
from darkroom.db.migrate import migrate
from darkroom.keys import ApiKey
from darkroom.tasks import NewTask, TaskParams
from tests.support.services import PostgresServer


def async_url(server: PostgresServer) -> str:
    return server.new_database("unit").replace("postgresql://", "postgresql+asyncpg://")


# The store's backends: a test module parametrizes its database fixture with these.
DATABASES = ["sqlite", "postgresql"]


async def migrated_database(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    """A fresh database of the kind the fixture's parameter names, with the schema."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        database = Database(async_url(request.getfixturevalue("postgres")))
    await migrate(database)
    return database


def new_task(
    key: ApiKey,
    index: int,
    model: str = "tiny-512",
    size: tuple[int, int] = (512, 512),
    cost: Decimal = Decimal(0),
) -> NewTask:
    """The index-th task of a test: enqueued in index order, seeded with the index, costing
    `cost` (free by default)."""
    return NewTask.build(
        key_id=key.id,
        model=model,
        prompt=f"task {index}",
        size=size,
        params=TaskParams(seed=index),
        max_attempts=3,
        enqueued_at=time.time() + index * 1e-6,
        cost=cost,
    )
