"""Queue throughput and pickup latency of the task table, on PostgreSQL and on SQLite, with 1, 4
and 16 worker processes whose engine returns instantly.

    .venv/bin/python bench/claims.py [--workers 1,4,16] [--tasks 2000] [--latency-tasks 300]
                                    [--rate 30] [--backends postgresql,sqlite] [--postgres-url URL]

Each worker process runs the worker's queue cycle with nothing in between: TaskStore.claim
(one task), TaskStore.complete at once; when the queue is empty it waits as a real worker does
(PostgreSQL: LISTEN/NOTIFY with the safety poll; SQLite: the poll, DARKROOM_POLL_SECONDS=1 by
default, since another process cannot be woken). Two figures per run:

- claims per second: a backlog of --tasks tasks is drained by the workers (claim + complete);
- pickup latency: one creator adds --latency-tasks tasks at --rate per second (each create
  followed by the API's wakeup, a NOTIFY on PostgreSQL), and the latency is each task's
  started_at (set by the claim) minus its enqueued_at (set before the INSERT), p50 and p99.

PostgreSQL is a private cluster started for the run (as the tests do), unless --postgres-url
names one. Both are on this machine, so the figures carry no network round trip.
"""

# ruff: noqa: E402 - the repository root goes on the import path first, for tests.support
from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa

from darkroom import logs
from darkroom.config import Settings
from darkroom.db import Database, tasks
from darkroom.db.migrate import migrate
from darkroom.keys import ApiKey, KeyStore
from darkroom.tasks import NewTask, TaskParams, TaskStore
from darkroom.worker.wakeup import wakeup_for

POLL_SECONDS = Settings().poll_seconds
LISTEN_POLL_SECONDS = Settings().listen_poll_seconds


def _settings(url: str) -> Settings:
    return Settings(database_url=url, data_dir=Path(tempfile.gettempdir()))


def _new_task(key: ApiKey, index: int) -> NewTask:
    return NewTask.build(
        key_id=key.id,
        model="instant",
        prompt=f"task {index}",
        size=(512, 512),
        params=TaskParams(seed=index),
        max_attempts=3,
    )


# -- worker processes -----------------------------------------------------------------------------


def _worker_process(url: str, index: int, ready: mp.Barrier, stop: mp.Event) -> None:
    asyncio.run(_worker(url, index, ready, stop))


async def _worker(url: str, index: int, ready: mp.Barrier, stop: mp.Event) -> None:
    settings = _settings(url)
    db = Database(settings.sqlalchemy_url, pool_size=2, max_overflow=0)
    store = TaskStore(db)
    wakeup = wakeup_for(db, settings)
    owner = f"bench-{index}"
    await wakeup.wait(0)  # starts listening (PostgreSQL) before the clock starts
    await asyncio.to_thread(ready.wait)
    while not stop.is_set():
        claimed = await store.claim(owner, limit=1, lease_seconds=60)
        for task in claimed:
            await store.complete(task, owner, f"instant/{task.id}")
        if not claimed:
            await wakeup.wait(POLL_SECONDS)
    await wakeup.close()
    await db.dispose()


# -- one run -------------------------------------------------------------------------------------


async def _prepare(url: str, backlog: int) -> ApiKey:
    db = Database(_settings(url).sqlalchemy_url)
    await migrate(db)
    _, key = await KeyStore(db).create("bench")
    store = TaskStore(db)
    for index in range(backlog):
        await store.create(_new_task(key, index), key, max_queue=10**9)
    await db.dispose()
    return key


async def _count_unclaimed(db: Database) -> int:
    async with db.read() as conn:
        query = sa.select(sa.func.count()).select_from(tasks).where(tasks.c.status == "idle")
        return (await conn.execute(query)).scalar_one()


async def _drain_seconds(url: str, started: float) -> float:
    db = Database(_settings(url).sqlalchemy_url)
    while await _count_unclaimed(db):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await db.dispose()
    return elapsed


async def _latencies(url: str, key: ApiKey, count: int, rate: float) -> list[float]:
    settings = _settings(url)
    db = Database(settings.sqlalchemy_url)
    store, wakeup = TaskStore(db), wakeup_for(db, settings)
    ids = []
    for index in range(count):
        task = await store.create(_new_task(key, index), key, max_queue=10**9)
        wakeup.notify()  # what the create route does once the task is committed
        ids.append(task.id)
        await asyncio.sleep(1 / rate)
    query = sa.select(tasks.c.started_at, tasks.c.enqueued_at).where(tasks.c.id.in_(ids))
    while await _count_unclaimed(db):
        await asyncio.sleep(0.05)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    await wakeup.close()
    await db.dispose()
    return [row.started_at - row.enqueued_at for row in rows]


def run(url: str, workers: int, backlog: int, latency_tasks: int, rate: float) -> dict[str, float]:
    key = asyncio.run(_prepare(url, backlog))
    context = mp.get_context("fork")  # forked before this process opens any event loop again
    ready, stop = context.Barrier(workers + 1), context.Event()
    processes = [
        context.Process(target=_worker_process, args=(url, i, ready, stop), daemon=True)
        for i in range(workers)
    ]
    for process in processes:
        process.start()
    try:
        ready.wait(timeout=120)
        started = time.perf_counter()
        seconds = asyncio.run(_drain_seconds(url, started))
        latencies = sorted(asyncio.run(_latencies(url, key, latency_tasks, rate)))
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return {
        "claims_per_second": backlog / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


# -- the whole bench -----------------------------------------------------------------------------


def _conditions(pg_version: str | None) -> str:
    cpu = platform.processor() or "unknown CPU"
    with_model = Path("/proc/cpuinfo")
    if with_model.exists():
        for line in with_model.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    parts = [
        f"machine: {platform.node()}, {cpu}, {os.cpu_count()} cores, {platform.platform()}",
        f"load average at the end (1, 5, 15 min): {load} (other work on the machine counts)",
        f"python {platform.python_version()}, SQLAlchemy {version('sqlalchemy')}, "
        f"asyncpg {version('asyncpg')}, "
        f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL)",
    ]
    if pg_version:
        parts.append(f"PostgreSQL {pg_version} (private cluster: fsync off, loopback TCP)")
    parts.append(
        f"worker wait when idle: PostgreSQL LISTEN/NOTIFY + {LISTEN_POLL_SECONDS:g} s safety "
        f"poll; SQLite poll every {POLL_SECONDS:g} s"
    )
    return "\n".join(parts)


async def _pg_version(url: str) -> str:
    db = Database(_settings(url).sqlalchemy_url)
    async with db.read() as conn:
        server = (await conn.execute(sa.text("SHOW server_version"))).scalar_one()
    await db.dispose()
    return str(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--tasks", type=int, default=2000, help="backlog drained per run")
    parser.add_argument("--latency-tasks", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30.0, help="creates per second")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--postgres-url", help="an existing server's database to use")
    args = parser.parse_args()
    logs.configure("warning")
    counts = [int(n) for n in args.workers.split(",")]
    backends = args.backends.split(",")
    results: list[tuple[str, int, dict[str, float]]] = []
    pg_version = None
    with ExitStack() as stack:
        pg = None
        if "postgresql" in backends and not args.postgres_url:
            from tests.support.services import postgres_server

            pg = stack.enter_context(postgres_server())
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-queue-")))
        for backend in backends:
            for workers in counts:
                if backend == "postgresql":
                    url = args.postgres_url or pg.new_database("bench")  # type: ignore[union-attr]
                    pg_version = pg_version or asyncio.run(_pg_version(url))
                else:
                    url = f"sqlite:///{folder / f'queue-{workers}.db'}"
                figures = run(url, workers, args.tasks, args.latency_tasks, args.rate)
                results.append((backend, workers, figures))
                print(
                    f"{backend:<11} {workers:>3} workers  {figures['claims_per_second']:8.0f} "
                    f"claims/s  pickup p50 {figures['p50_ms']:7.1f} ms  "
                    f"p99 {figures['p99_ms']:7.1f} ms",
                    flush=True,
                )
    print()
    print(_conditions(pg_version))
    print(
        f"backlog {args.tasks} tasks per run (claim + complete, one task per claim); "
        f"pickup latency over {args.latency_tasks} tasks created at {args.rate:g}/s"
    )
    print()
    print("| database | worker processes | claims/s | pickup p50 | pickup p99 |")
    print("|---|---|---|---|---|")
    for backend, workers, figures in results:
        print(
            f"| {backend} | {workers} | {figures['claims_per_second']:.0f} | "
            f"{figures['p50_ms']:.1f} ms | {figures['p99_ms']:.1f} ms |"
        )


if __name__ == "__main__":
    main()
