"""Wakes idle workers as soon as the API queues a task, so they need not poll fast; and wakes
the API's waiting generate calls as soon as their task ends, so they need not poll either.

`Wakeup` reaches this process only (one machine, SQLite). `PostgresWakeup` also reaches every
other process: `notify()` and `finished(task_id)` send a PostgreSQL NOTIFY (on `CHANNEL` and on
`FINISHED_CHANNEL`, with the task id as payload) after the change is committed, and each
process LISTENs on both channels on one dedicated connection. While that connection is up,
waiters poll only as a slow safety net (`safety_poll`); while it is down they poll as usual.

Workers in another process on SQLite have no signal to send: there a waiting generate call
finds its task by the safety poll alone, as it does after a NOTIFY lost on PostgreSQL or a task
that ended without one (a lease given up by the maintenance service).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import sqlalchemy as sa
import structlog

from darkroom.backoff import Backoff
from darkroom.config import Settings
from darkroom.db import Database

log = structlog.get_logger("darkroom.wakeup")

CHANNEL = "darkroom_tasks"
FINISHED_CHANNEL = "darkroom_finished"  # payload: the id of a task that reached done or failed
LISTENER_NAME = "darkroom-listen"
# Between attempts to bring the LISTEN connection back: 0.5 s doubling to 10 s.
RECONNECT_BACKOFF = Backoff(
    first=0.5, factor=2.0, cap=10.0, jitter=False
)  # its application_name, to tell it apart in pg_stat_activity


class Wakeup:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        # Per task id, the events of the calls waiting for that task to end.
        self._watchers: dict[str, set[asyncio.Event]] = {}

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

    # -- a task ended ---------------------------------------------------------------------------

    def finished(self, task_id: str) -> None:
        """Announces that the task may have ended (done or failed): its watchers read it again.
        A false alarm (a task put back in the queue) costs them one read."""
        self.wake_watchers(task_id)

    def wake_watchers(self, task_id: str | None = None) -> None:
        """Sets the events of the task's watchers; of every watcher when `task_id` is None."""
        if task_id is None:
            events = [event for events in self._watchers.values() for event in events]
        else:
            events = list(self._watchers.get(task_id, ()))
        for event in events:
            event.set()

    @contextlib.contextmanager
    def watching(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever the task may have ended. Enter it before reading the task and
        clear it before each read, so that an end announced meanwhile is never missed."""
        event = asyncio.Event()
        self._watchers.setdefault(task_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(task_id, set())
            watchers.discard(event)
            if not watchers:
                self._watchers.pop(task_id, None)

    def safety_poll(self, seconds: float) -> float:
        """How long a waiter may rely on notifications alone: `seconds` in one process, since
        workers in another one on the same SQLite file cannot notify it."""
        return seconds

    async def close(self) -> None:
        """Nothing to release in one process."""


class PostgresWakeup(Wakeup):
    """LISTEN/NOTIFY on PostgreSQL, with `safety_poll_seconds` as the idle poll while listening.

    `dsn` is a plain `postgresql://` URL for asyncpg; `notify_sql(channel, payloads)` runs one
    `pg_notify` per payload on a pooled connection (a callable so that this module needs no
    database object).
    """

    PROBE_SECONDS = 30.0  # a half-open TCP connection is only found by using it

    def __init__(
        self,
        dsn: str,
        notify_sql: Callable[[str, list[str]], Awaitable[None]],
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
        self._finished_ids: set[str] = set()

    # -- sending ------------------------------------------------------------------------------

    def notify(self) -> None:
        """Wakes local workers at once and, soon after, every listening process.

        Called after the task's transaction committed, so a woken worker finds it. NOTIFYs
        are coalesced: while one is in flight, any number of calls make one more."""
        self.wake_local()
        self._dirty = True
        self._start_sending()

    def finished(self, task_id: str) -> None:
        """Wakes this process's watchers of the task at once and, soon after, every other's.
        Called after the task's end was committed; the ids of many calls go in one statement."""
        super().finished(task_id)
        self._finished_ids.add(task_id)
        self._start_sending()

    def _start_sending(self) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._dirty or self._finished_ids:
            try:
                if self._dirty:
                    self._dirty = False
                    await self._notify_sql(CHANNEL, [""])
                if self._finished_ids:
                    ids, self._finished_ids = sorted(self._finished_ids), set()
                    await self._notify_sql(FINISHED_CHANNEL, ids)
            except Exception as exc:  # the safety polls still find the tasks
                log.warning("NOTIFY failed", error=repr(exc))
                return

    # -- listening ----------------------------------------------------------------------------

    async def wait(self, timeout: float) -> None:
        self._start_listening()
        await super().wait(self.safety_poll(timeout))

    @contextlib.contextmanager
    def watching(self, task_id: str) -> Iterator[asyncio.Event]:
        """As in one process; the first watcher of an API node without workers starts its
        listener."""
        self._start_listening()
        with super().watching(task_id) as event:
            yield event

    def safety_poll(self, seconds: float) -> float:
        """While listening, notifications arrive: only the slow safety poll is needed."""
        return max(seconds, self.safety_poll_seconds) if self.listening.is_set() else seconds

    def _start_listening(self) -> None:
        if self._listener is None:
            self._listener = asyncio.get_running_loop().create_task(self._listen_forever())

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
        await conn.add_listener(FINISHED_CHANNEL, self._on_finished)
        self.listening.set()
        log.info("listening for new tasks", channel=CHANNEL)
        # Tasks may have been queued, or have ended, while no one was listening.
        self.wake_local()
        self.wake_watchers()
        while not lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), self.PROBE_SECONDS)
            if not lost.is_set():
                await conn.fetchval("SELECT 1", timeout=10)

    def _on_finished(self, _conn: Any, _pid: int, _channel: str, task_id: str) -> None:
        self.wake_watchers(task_id)

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

    async def notify_sql(channel: str, payloads: list[str]) -> None:
        async with db.write() as conn:
            await conn.execute(
                sa.text(
                    "SELECT pg_notify(:channel, payload) "
                    "FROM unnest(CAST(:payloads AS text[])) AS payload"
                ),
                {"channel": channel, "payloads": payloads},
            )

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
