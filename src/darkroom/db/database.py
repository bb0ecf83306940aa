"""The engine and the two kinds of transaction the store needs.

SQLite allows one writer at a time. A deferred transaction that reads and then writes can fail
at once with "database is locked" when another writer got there first, so every write
transaction here starts with BEGIN IMMEDIATE (it takes the write lock up front and waits for it
under busy_timeout), writers of one process queue on an asyncio lock, and those of several
processes on a file lock (db/sqlite.py WriteLock), instead of sleeping in SQLite's busy
handler. Reads run in autocommit mode, which WAL lets proceed beside a
writer. SQLite runs on a sync engine in threads (db/sqlite.py), PostgreSQL on asyncpg.

On both, `read()` and `write()` yield a connection whose `await conn.execute(statement)` answers
a SQLAlchemy result and whose `await conn.run_sync(fn)` runs fn(sync_connection).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from darkroom.db.sqlite import SQLiteDatabase, SQLiteLookups, SQLiteReads, SQLiteTransaction

Connection = AsyncConnection | SQLiteReads | SQLiteLookups | SQLiteTransaction


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        max_overflow: int = 10,
        pool_timeout: float = 30.0,
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._sqlite: SQLiteDatabase | None = None
        # The SQLAlchemy engine: async (asyncpg) on PostgreSQL; sync (sqlite3, run in
        # threads) on SQLite.
        self.engine: AsyncEngine | Engine
        if self.is_sqlite:
            self._sqlite = SQLiteDatabase(url)
            self.engine = self._sqlite.engine
        else:
            # Bounded: a burst of requests waits up to pool_timeout for a connection instead
            # of opening more than the server's max_connections allows across all nodes. The
            # overflow is kept in the pool rather than closed on its return: under a steady
            # load above pool_size, closing it meant a new connection (and its statements
            # prepared again) for most requests, more than the read itself cost.
            self._async_engine = create_async_engine(
                url,
                pool_size=pool_size + max_overflow,
                max_overflow=0,
                pool_timeout=pool_timeout,
                # No ping before each checkout: it was a round trip on every request. A
                # connection that died with the server fails its one request (code 1), and
                # SQLAlchemy then drops every pooled connection opened before the failure, so
                # the pool is fresh again at once (tests/faults/test_postgres_restart.py).
                pool_pre_ping=False,
                connect_args={"server_settings": {"application_name": "darkroom"}},
            )
            self.engine = self._async_engine
            # Reads in autocommit mode, each statement its own snapshot as on SQLite: without
            # it asyncpg's dialect wraps every read in BEGIN and ROLLBACK, two more round trips
            # than the read itself (on the result route, two thirds of its time).
            self._reads = self._async_engine.execution_options(isolation_level="AUTOCOMMIT")

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """A transaction that may write; committed when the block exits without error."""
        if self._sqlite is not None:
            return self._sqlite.write()
        return self._async_engine.begin()

    def read(self) -> AbstractAsyncContextManager[Connection]:
        if self._sqlite is not None:
            return self._sqlite.reads
        return self._reads.connect()

    def lookup(self) -> AbstractAsyncContextManager[Connection]:
        """A read of a few rows by a unique index: on SQLite it runs on the event loop, cheaper
        than a thread hop (db/sqlite.py); on PostgreSQL it is `read()`."""
        if self._sqlite is not None:
            return self._sqlite.lookups
        return self._reads.connect()

    async def dispose(self) -> None:
        if self._sqlite is not None:
            await self._sqlite.dispose()
        else:
            await self._async_engine.dispose()
