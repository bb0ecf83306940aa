"""The task store on a real PostgreSQL server: migrations, the claim under concurrency
(FOR UPDATE SKIP LOCKED), LISTEN/NOTIFY wakeups and bounded connection pools."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from darkroom.app import App
from darkroom.config import Settings
from darkroom.db import Database, metadata, tasks
from darkroom.db.migrate import migrate
from darkroom.keys import ApiKey, KeyStore
from darkroom.tasks import TaskStore
from darkroom.tasks.model import batch_key
from darkroom.worker.wakeup import LISTENER_NAME, PostgresWakeup
from tests.support.services import PostgresServer
from tests.support.tasks import async_url, new_task


@pytest.fixture
async def db(postgres: PostgresServer) -> AsyncIterator[Database]:
    database = Database(async_url(postgres))
    await migrate(database)
    yield database
    await database.dispose()


async def new_key(db: Database) -> ApiKey:
    _, key = await KeyStore(db).create("unit")
    return key


# Models and sizes of queued tasks: each pair is a batch of its own.
BATCHES = [("a", (512, 512)), ("b", (512, 512)), ("c", (768, 512))]
A_512 = batch_key("a", 512, 512)


async def queue(db: Database, count: int, batches: list[tuple[str, tuple[int, int]]]) -> set[str]:
    key, store = await new_key(db), TaskStore(db)
    ids = set()
    for index in range(count):
        model, size = batches[index % len(batches)]
        task = await store.create(new_task(key, index, model, size), key, max_queue=10**6)
        ids.add(task.id)
    return ids


# -- schema -------------------------------------------------------------------------------------


async def test_migrations_build_the_schema_the_code_declares(db):
    async with db.engine.connect() as conn:
        differences = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert differences == []
    await migrate(db)  # a second run is a no-op


async def test_migrations_from_many_nodes_at_once_take_turns(postgres):
    url = async_url(postgres)
    databases = [Database(url) for _ in range(4)]
    try:
        await asyncio.gather(*(migrate(d) for d in databases))
        async with databases[0].read() as conn:
            version = await conn.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert len(version.all()) == 1
    finally:
        for database in databases:
            await database.dispose()


# -- the claim ------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 4])
async def test_concurrent_claimers_never_get_the_same_task(postgres, limit):
    url = async_url(postgres)
    setup = Database(url)
    await migrate(setup)
    queued = await queue(setup, 300, BATCHES)
    claimers = [Database(url, pool_size=1, max_overflow=0) for _ in range(8)]

    async def claim_until_empty(database: Database, owner: str, fill: bool) -> list[list]:
        """Claims as a worker does: by the oldest task's batch or, as when a batch fills, by
        a given batch key (half of the claimers start that way, racing the others)."""
        store, batches = TaskStore(database), []
        while fill and (
            batch := await store.claim(owner, limit=limit, lease_seconds=60, batch_key=A_512)
        ):
            assert {t.batch_key for t in batch} == {A_512}
            batches.append(batch)
        while batch := await store.claim(owner, limit=limit, lease_seconds=60):
            batches.append(batch)
        return batches

    try:
        results = await asyncio.gather(
            *(claim_until_empty(d, f"claimer-{i}", i % 2 == 0) for i, d in enumerate(claimers))
        )
    finally:
        for database in claimers:
            await database.dispose()
    batches = [batch for result in results for batch in result]
    claimed = [task.id for batch in batches for task in batch]
    assert len(claimed) == len(set(claimed)) == len(queued)
    assert set(claimed) == queued
    assert all(len({t.batch_key for t in batch}) == 1 and len(batch) <= limit for batch in batches)
    assert sum(1 for result in results if result) > 1  # the claimers really did share the work
    async with setup.read() as conn:
        rows = (await conn.execute(sa.select(tasks.c.status, tasks.c.attempt))).all()
    assert {(row.status, row.attempt) for row in rows} == {("processing", 1)}
    await setup.dispose()


async def test_a_claim_skips_rows_another_transaction_holds_instead_of_waiting(db):
    await queue(db, 2, BATCHES[:1])
    store = TaskStore(db)
    async with db.engine.connect() as holder:
        transaction = await holder.begin()
        oldest = (
            await holder.execute(
                sa.select(tasks.c.id).order_by(tasks.c.enqueued_at).limit(1).with_for_update()
            )
        ).scalar_one()
        # Guarded so a claim that blocked on the lock fails the test instead of hanging it.
        claimed = await asyncio.wait_for(store.claim("w", limit=2, lease_seconds=60), 30)
        await transaction.rollback()
    assert [t.id for t in claimed] != [] and oldest not in {t.id for t in claimed}


# -- LISTEN/NOTIFY and pools ---------------------------------------------------------------------


async def test_a_notify_in_one_process_wakes_a_listener_in_another(postgres, tmp_path):
    settings = Settings(
        data_dir=tmp_path, database_url=postgres.new_database("wake"), listen_poll_seconds=3600
    )
    worker_side, api_side = App.from_settings(settings), App.from_settings(settings)
    try:
        wakeup = worker_side.wakeup
        assert isinstance(wakeup, PostgresWakeup)
        await wakeup.wait(0)  # the first wait starts the listener
        await asyncio.wait_for(wakeup.listening.wait(), 30)
        waiting = asyncio.create_task(wakeup.wait(3600))
        await asyncio.sleep(0)
        api_side.wakeup.notify()
        await asyncio.wait_for(waiting, 30)  # woken, rather than timed out after an hour
    finally:
        await worker_side.close()
        await api_side.close()


async def test_a_lost_listen_connection_is_reopened_and_still_wakes_workers(postgres, tmp_path):
    url = postgres.new_database("relisten")
    settings = Settings(data_dir=tmp_path, database_url=url, listen_poll_seconds=3600)
    worker_side, api_side = App.from_settings(settings), App.from_settings(settings)
    wakeup = worker_side.wakeup
    assert isinstance(wakeup, PostgresWakeup)
    admin = await asyncpg.connect(postgres.url("postgres"))
    listeners = "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2"
    database = url.rsplit("/", 1)[1]
    try:
        await wakeup.wait(0)
        await asyncio.wait_for(wakeup.listening.wait(), 30)
        [first] = [row["pid"] for row in await admin.fetch(listeners, database, LISTENER_NAME)]
        await admin.execute("SELECT pg_terminate_backend($1)", first)

        async def reopened() -> None:
            while True:
                rows = await admin.fetch(listeners, database, LISTENER_NAME)
                if rows and [row["pid"] for row in rows] != [first] and wakeup.listening.is_set():
                    return
                await asyncio.sleep(0.05)

        await asyncio.wait_for(reopened(), 60)
        waiting = asyncio.create_task(wakeup.wait(3600))
        await asyncio.sleep(0)
        api_side.wakeup.notify()
        await asyncio.wait_for(waiting, 30)
    finally:
        await admin.close()
        await worker_side.close()
        await api_side.close()


@pytest.mark.parametrize(
    "options", ["?sslmode=disable", "?ssl=disable", "?ssl=prefer&prepared_statement_cache_size=0"]
)
async def test_url_options_work_for_the_pool_and_for_listen(postgres, tmp_path, options):
    # libpq spells TLS `sslmode`, SQLAlchemy's asyncpg dialect `ssl`, and asyncpg.connect
    # sends options it does not know to the server: each connection gets what it can read.
    url = postgres.new_database("options") + options
    app = App.from_settings(Settings(data_dir=tmp_path, database_url=url))
    try:
        async with app.db.read() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar_one() == 1
        await app.wakeup.wait(0)
        await asyncio.wait_for(app.wakeup.listening.wait(), 30)  # type: ignore[attr-defined]
    finally:
        await app.close()


async def test_the_pool_never_opens_more_connections_than_its_bounds(postgres, tmp_path):
    url = postgres.new_database("pool")
    settings = Settings(
        data_dir=tmp_path, database_url=url, db_pool_size=2, db_max_overflow=1, db_pool_timeout=60
    )
    app = App.from_settings(settings)
    await app.migrate()
    peak = 0

    async def busy_read() -> None:
        async with app.db.read() as conn:
            await conn.execute(sa.text("SELECT pg_sleep(0.05)"))

    async def watch(database: str) -> None:
        nonlocal peak
        monitor = Database(postgres.url("postgres").replace("postgresql:", "postgresql+asyncpg:"))
        query = sa.text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = :db AND application_name = 'darkroom'"
        )
        try:
            while True:
                async with monitor.read() as conn:
                    peak = max(peak, (await conn.execute(query, {"db": database})).scalar_one())
                await asyncio.sleep(0.01)
        finally:
            await monitor.dispose()

    watcher = asyncio.create_task(watch(url.rsplit("/", 1)[1]))
    try:
        await asyncio.gather(*(busy_read() for _ in range(40)))
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await app.close()
    assert 1 <= peak <= 3


# -- over HTTP, on every backend ------------------------------------------------------------------


def test_a_prompt_with_a_nul_character_is_code_3_not_an_internal_error(client):
    # PostgreSQL's text columns cannot hold NUL: the API refuses it as invalid input.
    body = {"model": "google-imagen-3", "prompt": "a lighthouse\x00at dusk"}
    answer = client.post("/v1/media/create", json=body).json()
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["prompt"]
    body = {"model": "google-imagen-3", "prompt": "ok", "negative_prompt": "blur\x00noise"}
    assert client.post("/v1/media/create", json=body).json()["code"] == 0
