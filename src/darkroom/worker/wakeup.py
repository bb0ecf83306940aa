"""Wakes idle workers as soon as the API queues a task, so they need not poll fast.

`Wakeup` reaches the workers of this process only (one machine, SQLite). `PostgresWakeup`
also reaches every other process: `notify()` sends a PostgreSQL NOTIFY after the task is
committed, and each worker process LISTENs on one dedicated connection. While that connection
is up, idle workers poll only as a slow safety net; while it is down they poll as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
import structlog

from darkroom.backoff import Backoff
from darkroom.config import Settings
from darkroom.db import Database

log = structlog.get_logger("darkroom.wakeup")

CHANNEL = "darkroom_tasks"
LISTENER_NAME = "darkroom-listen"
# Between attempts to bring the LISTEN connection back: 0.5 s doubling to 10 s.
RECONNECT_BACKOFF = Backoff(
    first=0.5, factor=2.0, cap=10.0, jitter=False
)  # its application_name, to tell it apart in pg_stat_activity


class Wakeup:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()

    def notify(self) -> None:
        self.wake_local()

    def wake_local(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, timeout: float) -> None:
        """Returns on the next notify, or after `timeout` seconds."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter, timeout)
        finally:
            self._waiters.discard(waiter)

    async def close(self) -> None:
        """Nothing to release in one process."""


class PostgresWakeup(Wakeup):
    """LISTEN/NOTIFY on PostgreSQL, with `safety_poll_seconds` as the idle poll while listening.

    `dsn` is a plain `postgresql://` URL for asyncpg; `notify_sql` runs `pg_notify` on a pooled
    connection (a callable so that this module needs no database object).
    """

    PROBE_SECONDS = 30.0  # a half-open TCP connection is only found by using it

    def __init__(
        self,
        dsn: str,
        notify_sql: Callable[[str], Awaitable[None]],
        *,
        safety_poll_seconds: float,
    ) -> None:
        super().__init__()
        self.dsn = dsn
        self._notify_sql = notify_sql
        self.safety_poll_seconds = safety_poll_seconds
        self.listening = asyncio.Event()
        self._listener: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._dirty = False

    # -- sending ------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wakes local workers at once and, soon after, every listening process.

        Called after the task's transaction committed, so a woken worker finds it. NOTIFYs
        are coalesced: while one is in flight, any number of calls make one more."""
        self.wake_local()
        self._dirty = True
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self._notify_sql(CHANNEL)
            except Exception as exc:  # the workers' safety poll still finds the task
                log.warning("NOTIFY failed", error=repr(exc))
                return

    # -- listening ----------------------------------------------------------------------------

    async def wait(self, timeout: float) -> None:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen_forever())
        if self.listening.is_set():
            timeout = max(timeout, self.safety_poll_seconds)
        await super().wait(timeout)

    async def _listen_forever(self) -> None:
        import asyncpg

        failures = 0
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=10, server_settings={"application_name": LISTENER_NAME}
                )
                await self._listen_on(conn)
                log.warning("LISTEN connection closed; polling until it is back")
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("LISTEN connection lost; polling until it is back", error=repr(exc))
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.terminate()
            await asyncio.sleep(RECONNECT_BACKOFF.delay(failures))
            failures += 1

    async def _listen_on(self, conn: Any) -> None:
        """Returns when the connection is lost."""
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(CHANNEL, lambda *_args: self.wake_local())
        self.listening.set()
        log.info("listening for new tasks", channel=CHANNEL)
        self.wake_local()  # tasks may have been queued while no one was listening
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.PROBE_SECONDS)
            if not lost.is_set():
                await conn.fetchval("SELECT 1", timeout=10)

    async def close(self) -> None:
        if self._sender is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._sender, 5)
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
            self._listener = None


def wakeup_for(db: Database, settings: Settings) -> Wakeup:
    """Across processes on PostgreSQL (LISTEN/NOTIFY); within this process on SQLite."""
    if db.is_sqlite:
        return Wakeup()

    async def notify_sql(channel: str) -> None:
        async with db.write() as conn:
            await conn.execute(sa.text("SELECT pg_notify(:channel, '')"), {"channel": channel})

    return PostgresWakeup(
        listen_dsn(db.url), notify_sql, safety_poll_seconds=settings.listen_poll_seconds
    )


# What asyncpg reads from a DSN's query string; it sends any other key to the server as a
# setting, which the server refuses (SQLAlchemy's `?ssl=require`, `prepared_statement_...`).
_ASYNCPG_DSN_OPTIONS = {
    "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslpassword", "sslnegotiation",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "target_session_attrs",
    "krbsrvname", "gsslib", "service", "passfile",
}  # fmt: skip


def listen_dsn(sqlalchemy_url: str) -> str:
    """The database URL as asyncpg.connect takes it, for the dedicated LISTEN connection."""
    url = sa.make_url(sqlalchemy_url).set(drivername="postgresql")
    query = {k: v for k, v in url.query.items() if k in _ASYNCPG_DSN_OPTIONS}
    if "ssl" in url.query and "sslmode" not in query:
        ssl = str(url.query["ssl"]).lower()
        query["sslmode"] = {"true": "require", "false": "disable"}.get(ssl, ssl)
    return url.set(query=query).render_as_string(hide_password=False)
