"""The async engine and the two kinds of transaction the store needs.

SQLite allows one writer at a time. A deferred transaction that reads and then writes can fail
at once with "database is locked" when another writer got there first, so every write
transaction here starts with BEGIN IMMEDIATE (it takes the write lock up front and waits for it
under busy_timeout), and writers of one process also queue on an asyncio lock instead of
spinning in SQLite's busy handler. Reads run in deferred transactions, which WAL lets proceed
beside a writer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


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
        if self.is_sqlite:
            self.engine: AsyncEngine = create_async_engine(url, connect_args={"timeout": 60})
            _make_sqlite_transactions_explicit(self.engine)
        else:
            # Bounded: a burst of requests waits up to pool_timeout for a connection instead
            # of opening more than the server's max_connections allows across all nodes.
            self.engine = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_timeout=pool_timeout,
                pool_pre_ping=True,
                connect_args={"server_settings": {"application_name": "darkroom"}},
            )
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """A transaction that may write; committed when the block exits without error."""
        async with contextlib.AsyncExitStack() as stack:
            if self._write_lock is not None:
                await stack.enter_async_context(self._write_lock)
            conn = await stack.enter_async_context(self.engine.begin())
            yield conn

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            await conn.execution_options(sqlite_begin="DEFERRED")
            yield conn

    async def dispose(self) -> None:
        await self.engine.dispose()


def _make_sqlite_transactions_explicit(engine: AsyncEngine) -> None:
    """pysqlite's own transaction handling defers BEGIN; take it over (SQLAlchemy's recipe)."""

    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn):  # type: ignore[no-untyped-def]
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")
