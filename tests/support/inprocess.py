"""Darkroom's queue in this process, for the unit layer: a real TaskStore on SQLite in a
temporary folder, darkroom.testing's engine and storage, and a Worker run as a task on the
test's event loop. Waiting is by polling with a timeout, never by sleeping a fixed time, so
that tests assert orders and counts rather than durations (the machine may be slow)."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from darkroom.db import Database
from darkroom.db.migrate import migrate
from darkroom.engines import Catalog, ModelSpec
from darkroom.keys import ApiKey, KeyStore
from darkroom.tasks import Task, TaskStatus, TaskStore
from darkroom.testing import FunctionEngine, InMemoryStorage
from darkroom.worker import EnginePool, Worker
from tests.support.tasks import new_task

T = TypeVar("T")
# What each task of the in-process queue costs its key (a balance of 100): 1, as a credit was.
TASK_PRICE = Decimal(1)

WAIT_SECONDS = 10.0  # a bound for a hung test, not a measure: tests pass in milliseconds
POLL_SECONDS = 0.01
RETENTION_HOURS = 1.0
MODEL = "fake"
FINISHED = (TaskStatus.DONE, TaskStatus.FAILED)


async def eventually(check: Callable[[], Awaitable[T] | T], what: str) -> T:
    """The first truthy answer of `check` (a function or a coroutine function), polled until
    WAIT_SECONDS have passed."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not (answer := await _answer(check)):
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {WAIT_SECONDS:g} s for {what}")
        await asyncio.sleep(POLL_SECONDS)
    return answer


async def _answer(check: Callable[[], Awaitable[T] | T]) -> T:
    answer = check()
    return await answer if inspect.isawaitable(answer) else answer


@asynccontextmanager
async def sqlite_database(folder: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database in the folder, disposed of afterwards."""
    db = Database(f"sqlite:///{folder / 'darkroom.db'}")
    await migrate(db)
    try:
        yield db
    finally:
        await db.dispose()


@dataclasses.dataclass
class Queue:
    """A store with one key to queue under, and the in-memory parts a worker needs."""

    db: Database
    store: TaskStore
    key: ApiKey
    storage: InMemoryStorage
    catalog: Catalog
    pool: EnginePool

    async def add(self, index: int, model: str = MODEL, *, size: int = 64, **fields: Any) -> Task:
        """Queues task `index` (its seed; higher indices are younger) of `model` at a square
        `size`; `fields` override the NewTask's (max_attempts, prompt, ...)."""
        queued = new_task(self.key, index, model, (size, size), cost=TASK_PRICE)
        new = dataclasses.replace(queued, **fields)
        return await self.store.create(new, self.key, max_queue=1000)

    async def task(self, task_id: str) -> Task:
        task = await self.store.get(task_id)
        assert task is not None, task_id
        return task

    async def finished(self, task_id: str) -> Task:
        """The task once it is done or failed."""

        async def ended() -> Task | None:
            task = await self.task(task_id)
            return task if task.status in FINISHED else None

        return await eventually(ended, f"task {task_id} to finish")

    async def engine(self, model: str = MODEL) -> FunctionEngine:
        """The model's engine, as the pool loaded it (and the worker uses it)."""
        engine = await self.pool.get(model)
        assert isinstance(engine, FunctionEngine)
        return engine

    @asynccontextmanager
    async def worker(self, **options: Any) -> AsyncIterator[Worker]:
        """A worker running on the event loop; stopped (its batch in hand finished) on exit."""
        options = {"lease_seconds": 30.0, "poll_seconds": 0.02, **options}
        worker = Worker(
            self.store,
            self.storage,
            self.catalog,
            self.pool,
            retention_hours=RETENTION_HOURS,
            name="unit-worker",
            **options,
        )
        running = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            worker.stop()
            await asyncio.wait_for(running, WAIT_SECONDS)


@asynccontextmanager
async def in_process_queue(folder: Path, *models: ModelSpec) -> AsyncIterator[Queue]:
    async with sqlite_database(folder) as db:
        _, key = await KeyStore(db).create("unit", balance=Decimal(100))
        catalog = Catalog({spec.id: spec for spec in models})
        pool = EnginePool(catalog, folder)
        try:
            yield Queue(db, TaskStore(db), key, InMemoryStorage(), catalog, pool)
        finally:
            await pool.close()
