"""The migrations on both databases, from a database as an older release left it: 0003 carries
each key's credits over into its balance, and the tasks they already paid for are refunded at
most once afterwards."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from darkroom.db import Database
from darkroom.db.migrate import MIGRATIONS, migrate
from darkroom.keys import KeyStore
from darkroom.tasks import TaskStore
from tests.support.tasks import DATABASES, async_url

# The two tables as release 0002 had them, with only the columns these tests fill.
OLD_KEYS = sa.table(
    "api_keys",
    *(sa.column(name) for name in ("id", "name", "prefix", "key_hash", "credits", "created_at")),
)
OLD_TASKS = sa.table(
    "tasks",
    sa.column("params", sa.JSON),
    *(
        sa.column(name)
        for name in (
            "id", "key_id", "model", "prompt", "width", "height", "batch_key",
            "status", "created_at", "enqueued_at", "attempt", "max_attempts", "finished_at",
        )
    ),
)  # fmt: skip


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'old.db'}")
    else:
        database = Database(async_url(request.getfixturevalue("postgres")))
    yield database
    await database.dispose()


async def alembic(db: Database, action: str, revision: str) -> None:
    def run(connection: sa.Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.write() as conn:
        await conn.run_sync(run)


def old_key(key_id: int, credits: int | None) -> dict:
    return {
        "id": key_id,
        "name": f"key {key_id}",
        "prefix": f"dk_{key_id}",
        "key_hash": f"{key_id:064d}",
        "credits": credits,
        "created_at": time.time(),
    }


def old_task(task_id: str, key_id: int, status: str) -> dict:
    return {
        "id": task_id,
        "key_id": key_id,
        "model": "google-imagen-3",
        "prompt": "a lighthouse",
        "width": 1024,
        "height": 1024,
        "params": {"seed": 1},
        "batch_key": "google-imagen-3|1024x1024",
        "status": status,
        "created_at": int(time.time()),
        "enqueued_at": time.time(),
        "attempt": 0,
        "max_attempts": 3,
        "finished_at": time.time() if status == "failed" else None,
    }


async def release_0002_database(db: Database) -> None:
    """Keys with 7 credits and none (unmetered); the metered key has an idle task and one
    that failed (its credit already given back)."""
    await alembic(db, "upgrade", "0002")
    async with db.write() as conn:
        await conn.execute(OLD_KEYS.insert(), [old_key(1, 7), old_key(2, None)])
        await conn.execute(
            OLD_TASKS.insert(),
            [old_task("a" * 24, 1, "idle"), old_task("b" * 24, 1, "failed")],
        )


async def test_credits_become_the_same_balance_and_unmetered_keys_stay_unmetered(db):
    await release_0002_database(db)
    await migrate(db)
    metered, unmetered = await KeyStore(db).list()
    assert (metered.balance, metered.credit_limit) == (Decimal(7), Decimal(0))
    assert (unmetered.balance, unmetered.credit_limit) == (None, Decimal(0))
    async with db.read() as conn:
        columns = (await conn.execute(sa.select(sa.text("*")).select_from(OLD_KEYS))).keys()
    assert "credits" not in columns


async def test_a_task_paid_with_a_credit_is_refunded_once_and_an_old_refund_not_again(db):
    await release_0002_database(db)
    await migrate(db)
    store, keys = TaskStore(db), KeyStore(db)
    idle, failed = await store.get("a" * 24), await store.get("b" * 24)
    assert idle is not None and failed is not None
    assert (idle.cost, idle.refunded_at) == (Decimal(1), None)
    assert failed.cost == 1 and failed.refunded_at is not None  # given back before 0003
    await store.cancel(idle.id, idle.key_id)
    await store.cancel(failed.id, failed.key_id)
    [metered, _] = await keys.list()
    assert metered.balance == 8


async def test_a_downgrade_gives_whole_balances_back_as_credits(db):
    await release_0002_database(db)
    await migrate(db)
    await KeyStore(db).topup("1", Decimal("2.5"))
    await alembic(db, "downgrade", "0002")
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(OLD_KEYS.c.id, OLD_KEYS.c.credits))).all()
    assert sorted(rows) == [(1, 9), (2, None)]
