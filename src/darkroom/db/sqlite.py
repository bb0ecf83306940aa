"""SQLite on a sync engine in threads, one hop per statement.

aiosqlite runs each DBAPI call (BEGIN, execute, each fetch, cursor close, rollback on return to
the pool) as its own hop to the connection's thread, with a greenlet switch around each: a
one-row read took several hops. Here the same SQLAlchemy statements run on the standard
library's driver in threads that each keep their connection, and each hop does a whole step:

- a read is one hop: the statement runs on the thread's connection in SQLite's autocommit mode,
  its own snapshot (as each statement on PostgreSQL under READ COMMITTED);
- a write transaction runs on the one writer thread and its connection: the first statement
  begins (BEGIN IMMEDIATE) and executes in one hop, each further statement is a hop, and the
  end of the block commits or rolls back in one more. The writer thread runs what it is given
  in order, so the next transaction can be handed in as soon as this one's end is: it starts
  after it, without waiting for the event loop to hear that the commit is done.

Every statement's rows are read to the end in its thread, so the event loop never touches a
cursor and never waits on SQLite.

The exception is `lookups`: a read of a row or two by a unique index (the key of a request, the
task of a result) runs on the event loop itself, on a connection of its own. It takes a few
tens of microseconds, less than the hop to a thread and back, and in WAL mode a reader never
waits for a writer; the result route is the hottest path of a busy server (clients poll), and
that hop was most of its cost. Anything that may read more rows stays in the threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import os
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, Self, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, Result

T = TypeVar("T")
Parameters = Mapping[str, Any] | Sequence[Mapping[str, Any]] | None

# Threads for reads, per process. Statements mostly hold the GIL, so more would not read
# faster; aiosqlite had up to 15 (its pool: 5 + 10 overflow).
READ_THREADS = 8
# Seconds SQLite's busy handler waits for another process's write lock.
BUSY_TIMEOUT = 60


class SQLiteDatabase:
    """SQLite for the Database facade: reads and write transactions on a sync engine."""

    def __init__(self, url: str) -> None:
        # The standard library's driver, whichever the URL named (sqlite+aiosqlite, say).
        target = sa.make_url(url).set(drivername="sqlite")
        if target.database in (None, "", ":memory:"):
            raise ValueError("SQLite needs a database file: each connection to :memory: is empty")
        _create_private(target.database)
        self.engine: Engine = sa.create_engine(
            target,
            connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False},
            # A connection for each thread, and room for users of the engine itself.
            pool_size=READ_THREADS + 1,
            max_overflow=READ_THREADS,
        )
        _make_transactions_explicit(self.engine)
        self._reader = _Threads(
            self.engine.execution_options(sqlite_begin=None), READ_THREADS, "darkroom-sqlite-read"
        )
        self.write_lock = WriteLock(f"{target.database}-writer.lock")
        self._writer = _Threads(
            self.engine.execution_options(write_lock=self.write_lock), 1, "darkroom-sqlite-write"
        )
        # What `async with db.read() as conn` gives: nothing to open or end.
        self.reads = SQLiteReads(self._reader)
        self.lookups = SQLiteLookups(self.engine.execution_options(sqlite_begin=None))
        self._write_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[SQLiteTransaction]:
        """Committed when the block exits without error, rolled back otherwise."""
        await self._write_lock.acquire()
        transaction = SQLiteTransaction(self._writer)
        commit = False
        try:
            yield transaction
            commit = True
        finally:
            ended = transaction.end(commit=commit)
            # The end is queued on the writer thread behind this transaction's statements, so
            # the next transaction may queue its own behind it already.
            self._write_lock.release()
            # Shielded: a canceled caller stops waiting, the transaction still ends.
            await asyncio.shield(ended)

    async def dispose(self) -> None:
        """Lets the threads finish what they were given, then closes the connections. Like an
        engine after dispose(), the database can still be used afterwards."""
        await asyncio.gather(self._reader.close(), self._writer.close())
        self.lookups.close()
        self.write_lock.close()
        self.engine.dispose()


class _Autocommit:
    """`async with` for reads in SQLite's autocommit mode: nothing to begin, nothing to end."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        return None


class SQLiteReads(_Autocommit):
    """What `Database.read()` yields on SQLite: each statement is one hop to a read thread,
    on that thread's connection, in SQLite's autocommit mode (no BEGIN, nothing to end)."""

    def __init__(self, threads: _Threads) -> None:
        self._threads = threads

    async def execute(
        self,
        statement: sa.Executable,
        parameters: Parameters = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        return await self._threads.run(_execute, statement, parameters, execution_options)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self._threads.run(fn, *args, **kwargs)


class SQLiteLookups(_Autocommit):
    """What `Database.lookup()` yields on SQLite: each statement runs at once on the caller's
    thread (the event loop), on one connection kept for it, in autocommit mode. Only for reads
    of a few rows by a unique index (see the module's docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conn: Connection | None = None
        self._prepared: dict[sa.Select[Any], _PreparedLookup] = {}

    async def execute(
        self,
        statement: sa.Executable,
        parameters: Parameters = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        if self._conn is None:
            self._conn = self._engine.connect()
        try:
            if isinstance(statement, sa.Select) and isinstance(parameters, Mapping):
                return self._prepared_for(statement).run(self._conn, parameters)  # type: ignore[return-value]
            # Not frozen as the threads' results are: the caller reads its row or two before
            # its next await, on this same thread, so the live cursor is safe and cheaper.
            return self._conn.execute(statement, parameters, execution_options=execution_options)
        except BaseException:
            self.close()  # a connection in doubt is not used again
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.invalidate()
            conn.close()

    def _prepared_for(self, statement: sa.Select[Any]) -> _PreparedLookup:
        prepared = self._prepared.get(statement)
        if prepared is None:
            prepared = self._prepared[statement] = _PreparedLookup(statement, self._engine.dialect)
        return prepared


class _PreparedLookup:
    """A select compiled once, run on the driver's own cursor, its values converted by the
    columns' own result processors (JSON, Money, ...): what SQLAlchemy does for a statement,
    without the execution context it builds each time, which cost more than the lookup. Used
    for the lookups' prebuilt statements (a key by its hash, a task by its id)."""

    def __init__(self, statement: sa.Select[Any], dialect: sa.Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = compiled.string
        self.binds = list(compiled.positiontup or ())
        columns = list(statement.selected_columns)
        self.names = [column.key for column in columns]
        processors = [
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        ]
        # Most columns come back from the driver as they are: only the few with a processor
        # (JSON, Money, ...) are converted, after the row is built in one C-level step.
        self.converted = [
            (index, name, process)
            for index, (name, process) in enumerate(zip(self.names, processors, strict=True))
            if process is not None
        ]

    def run(self, conn: Connection, parameters: Mapping[str, Any]) -> LookupRows:
        cursor = conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            self.sql, [parameters[name] for name in self.binds]
        )
        try:
            rows = cursor.fetchall()
        finally:
            cursor.close()
        return LookupRows([self._row(values) for values in rows])

    def _row(self, values: Sequence[Any]) -> LookupRow:
        row = LookupRow(zip(self.names, values, strict=True))
        for index, name, process in self.converted:
            row[name] = process(values[index])
        return row


class LookupRow(dict[str, Any]):
    """A row of a prepared lookup: its values by column name, as attributes too, like a
    SQLAlchemy Row (`row.id`, `row._mapping`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def _mapping(self) -> LookupRow:
        return self


class LookupRows:
    """The rows of a prepared lookup, read the ways its callers read a SQLAlchemy result."""

    def __init__(self, rows: list[LookupRow]) -> None:
        self._rows = rows

    def one_or_none(self) -> LookupRow | None:
        if len(self._rows) > 1:
            raise sa.exc.MultipleResultsFound(
                "Multiple rows were found when one or none was required"
            )
        return self._rows[0] if self._rows else None

    def all(self) -> list[LookupRow]:
        return list(self._rows)


class SQLiteTransaction:
    """What `Database.write()` yields on SQLite: statements on the writer thread's connection,
    in one BEGIN IMMEDIATE transaction, each one hop."""

    def __init__(self, writer: _Threads) -> None:
        self._writer = writer
        self._open = True

    async def execute(
        self,
        statement: sa.Executable,
        parameters: Parameters = None,
        *,
        execution_options: Mapping[str, Any] | None = None,
    ) -> Result[Any]:
        return await self.run_sync(_execute, statement, parameters, execution_options)

    async def run_sync(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._open:
            raise sa.exc.ResourceClosedError("This transaction has ended")
        return await self._writer.run(fn, *args, **kwargs)

    def end(self, *, commit: bool) -> asyncio.Future[None]:
        self._open = False
        return self._writer.submit(_end, commit, keep_on_error=False)


def _execute(
    conn: Connection,
    statement: sa.Executable,
    parameters: Parameters,
    options: Mapping[str, Any] | None,
) -> Result[Any]:
    """The statement's result with every row read and its cursor closed."""
    result = conn.execute(statement, parameters, execution_options=options)
    if not result.returns_rows:
        # An UPDATE without RETURNING: SQLAlchemy closed the cursor and kept the rowcount.
        return result
    rowcount = result.rowcount  # type: ignore[attr-defined]
    rows = result.freeze()()
    rows.rowcount = rowcount  # type: ignore[attr-defined]
    return rows


def _end(conn: Connection, commit: bool) -> None:
    try:
        if commit:
            conn.commit()
        else:
            conn.rollback()
    finally:
        _release_write_lock(conn)


class WriteLock:
    """The writers of every process on one database file, in line: an exclusive `flock` on a
    file beside it, taken by the writer thread before BEGIN IMMEDIATE and given back after the
    COMMIT or ROLLBACK.

    SQLite serialises writers itself, but a writer that finds the database locked by another
    process sleeps in its busy handler (1, 2, 5, ... up to 100 ms at a time) and tries again,
    so with two server processes creates waited out those sleeps (bench/api.py: p99 240 ms).
    A writer waiting on this lock wakes as soon as the other one commits. It is only that
    speed-up: SQLite's own lock still decides, so a process that does not take it (a migration,
    an outside tool) is as safe as before."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        """Gives the lock back; does nothing when it is not held (flock's own LOCK_UN)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # which gives the lock back too


def _release_write_lock(conn: Connection) -> None:
    lock = conn.get_execution_options().get("write_lock")
    if lock is not None:
        lock.release()


class _Threads:
    """Threads that each keep one connection of the engine and run fn(connection, ...)."""

    def __init__(self, engine: Engine, count: int, name: str) -> None:
        self._engine = engine
        self._count = count
        self._name = name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._opened: set[Connection] = set()
        self._opened_lock = threading.Lock()

    def submit(
        self, fn: Callable[..., T], *args: Any, keep_on_error: bool = True, **kwargs: Any
    ) -> asyncio.Future[T]:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._count, thread_name_prefix=self._name
            )
        return asyncio.wrap_future(
            self._executor.submit(self._call, fn, args, kwargs, keep_on_error)
        )

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await self.submit(fn, *args, **kwargs)

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)
        with self._opened_lock:
            opened, self._opened = self._opened, set()
        for conn in opened:
            conn.close()

    # -- in a thread --------------------------------------------------------------------

    def _call(self, fn: Callable[..., T], args: Any, kwargs: Any, keep_on_error: bool) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._engine.connect()
            with self._opened_lock:
                self._opened.add(conn)
        try:
            return fn(conn, *args, **kwargs)
        except BaseException:
            # A failed statement leaves its transaction for the end of the block to roll back;
            # a failed end (or read) leaves a connection in doubt: the next call opens another.
            if not keep_on_error or not conn.in_transaction() or conn.invalidated:
                self._local.conn = None
                with self._opened_lock:
                    self._opened.discard(conn)
                # Invalidated, not returned to the pool: after a failed COMMIT, SQLAlchemy
                # counts the transaction as ended while SQLite may still hold it (and the write
                # lock); closing the driver's connection is what rolls it back.
                conn.invalidate()
                conn.close()
                _release_write_lock(conn)  # closing it ended its transaction
            raise


def _create_private(database: str) -> None:
    """Creates a missing database file 0600 (SQLite would make it 0644 under the usual umask);
    SQLite gives its -wal and -shm files the database file's mode. A URI name (file:...) or a
    folder that does not exist is left to SQLite, which opens or reports it as before."""
    if database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError, NotADirectoryError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _make_transactions_explicit(engine: Engine) -> None:
    """pysqlite's own transaction handling defers BEGIN; take it over (SQLAlchemy's recipe).
    A transaction begins IMMEDIATE unless the execution option `sqlite_begin` names another
    mode; None leaves SQLite in autocommit mode, each statement its own transaction."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit reaches the disk before the API answers, so an accepted task
        # survives a power loss too (NORMAL in WAL mode may lose the last commits then).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT * 1000}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):  # type: ignore[no-untyped-def]
        options = conn.get_execution_options()
        mode = options.get("sqlite_begin", "IMMEDIATE")
        if mode is None:
            return
        lock = options.get("write_lock")  # the writer thread's (WriteLock)
        if lock is not None:
            lock.acquire()
        try:
            conn.exec_driver_sql(f"BEGIN {mode}")
        except BaseException:
            if lock is not None:
                lock.release()
            raise
