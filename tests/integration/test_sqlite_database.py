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


def _lock_is_free(path) -> bool:
    """Whether another open file description can take the writers' lock right now."""
    import fcntl
    import os

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # gives back what it took, if anything
    return True


async def test_writers_of_every_process_hold_the_file_lock_from_begin_to_end(tmp_path):
    """A writer waiting for another process's write sleeps in SQLite's busy handler unless it
    waits on the writers' file lock, which must be held for exactly the transaction: taken
    before BEGIN, given back after COMMIT, after ROLLBACK, and after a failed COMMIT."""
    database = tmp_path / "darkroom.db"
    db = Database(f"sqlite:///{database}")
    await migrate(db)
    lock = f"{database}-writer.lock"

    def key_row(name: str) -> dict[str, object]:
        return {"name": name, "prefix": f"dk_{name}", "key_hash": name * 64, "created_at": 0.0}

    async with db.write() as conn:
        await conn.execute(api_keys.insert().values(**key_row("a")))
        assert not _lock_is_free(lock)
    assert _lock_is_free(lock)

    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await conn.execute(api_keys.insert().values(**key_row("b")))
            assert not _lock_is_free(lock)
            raise RuntimeError("rolled back")
    assert _lock_is_free(lock)

    with pytest.raises(sa.exc.IntegrityError):
        async with db.write() as conn:
            await conn.execute(sa.text("PRAGMA defer_foreign_keys=ON"))
            orphan = new_task(NO_SUCH_KEY, 0)
            await conn.execute(tasks.insert().values(**orphan.row(), status="idle", attempt=0))
    assert _lock_is_free(lock)

    # Reads never take it: a read goes on while another process's writer holds the lock.
    other = Database(f"sqlite:///{database}")
    async with other.write() as held:
        await held.execute(api_keys.insert().values(**key_row("c")))
        async with db.read() as conn:
            names = (await conn.execute(sa.select(api_keys.c.name))).scalars().all()
        assert names == ["a"]
        waiting = asyncio.ensure_future(_add_key(db, key_row("d")))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # in line behind the other process's writer
    await asyncio.wait_for(waiting, timeout=20)
    async with db.read() as conn:
        names = (await conn.execute(sa.select(api_keys.c.name))).scalars().all()
    assert sorted(names) == ["a", "c", "d"]
    await asyncio.gather(db.dispose(), other.dispose())


async def _add_key(db: Database, row: dict[str, object]) -> None:
    async with db.write() as conn:
        await conn.execute(api_keys.insert().values(**row))
