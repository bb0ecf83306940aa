"""SQLite on the standard driver in threads (db/sqlite.py): a transaction whose COMMIT fails
leaves nothing behind, neither its rows for readers nor SQLite's write lock for writers."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from darkroom.db import Database, api_keys, tasks
from darkroom.db.migrate import migrate
from darkroom.keys import ApiKey
from tests.support.tasks import new_task

NO_SUCH_KEY = ApiKey(
    id=999,
    name="none",
    prefix="dk_none",
    models=None,
    balance=None,
    credit_limit=Decimal(0),
    created_at=0.0,
    revoked_at=None,
)


async def test_a_failed_commit_leaves_no_transaction_behind(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'darkroom.db'}")
    await migrate(db)
    orphan = new_task(NO_SUCH_KEY, 0)
    with pytest.raises(sa.exc.IntegrityError):
        async with db.write() as conn:
            # The foreign key is checked at COMMIT, so it is the commit that fails.
            await conn.execute(sa.text("PRAGMA defer_foreign_keys=ON"))
            await conn.execute(tasks.insert().values(**orphan.row(), status="idle", attempt=0))
    for _ in range(20):  # on every read thread
        async with db.read() as conn:
            count = (await conn.execute(sa.select(sa.func.count()).select_from(tasks))).scalar()
        assert count == 0
    write = db.write()

    async def add_key() -> None:
        async with write as conn:
            await conn.execute(
                api_keys.insert().values(
                    name="after", prefix="dk_after", key_hash="0" * 64, created_at=time.time()
                )
            )

    await asyncio.wait_for(add_key(), timeout=20)  # not stuck behind a leftover write lock
    await db.dispose()
