"""The composition root: one place that builds the parts from settings, for the API process
and for worker processes alike."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa
import structlog

from darkroom.config import Settings
from darkroom.db import Database
from darkroom.db.migrate import migrate
from darkroom.engines import Catalog
from darkroom.keys import KeyStore
from darkroom.safety import ContentPolicy
from darkroom.settings_file import SettingsFile
from darkroom.storage import Storage, open_storage
from darkroom.tasks import TaskStore
from darkroom.worker import EnginePool, Wakeup, Worker
from darkroom.worker.loop import new_owner_name
from darkroom.worker.wakeup import PostgresWakeup

log = structlog.get_logger("darkroom")


@dataclass
class Services:
    settings: Settings
    db: Database
    keys: KeyStore
    store: TaskStore
    storage: Storage
    catalog: Catalog
    policy: ContentPolicy
    wakeup: Wakeup = field(default_factory=Wakeup)
    engines: EnginePool | None = None
    workers: list[Worker] = field(default_factory=list)
    _running: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        file = SettingsFile.load(settings.config)
        db = Database(
            settings.sqlalchemy_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
        return cls(
            settings=settings,
            db=db,
            keys=KeyStore(db),
            store=TaskStore(db),
            storage=open_storage(settings),
            catalog=file.catalog,
            policy=file.policy,
            wakeup=wakeup_for(db, settings),
        )

    async def migrate(self) -> None:
        """Readies the shared parts every node starts with: the schema and the storage."""
        await migrate(self.db)
        await self.storage.prepare()

    def start_workers(self, count: int, models: list[str] | None = None) -> None:
        if count <= 0:
            return
        self.engines = EnginePool(
            self.catalog, self.settings.data_dir, memory_budget_mb=self.settings.memory_budget_mb
        )
        for index in range(count):
            worker = Worker(
                self.store,
                self.storage,
                self.catalog,
                self.engines,
                retention_hours=self.settings.retention_hours,
                lease_seconds=self.settings.lease_seconds,
                poll_seconds=self.settings.poll_seconds,
                models=models,
                wakeup=self.wakeup,
                name=new_owner_name(index),
            )
            self.workers.append(worker)
            self._running.append(asyncio.create_task(worker.run(), name=worker.owner))

    async def stop_workers(self) -> None:
        """Stops claiming, lets every batch in hand finish, and waits for the workers."""
        for worker in self.workers:
            worker.stop()
        await asyncio.gather(*self._running, return_exceptions=True)
        self._running.clear()
        if self.engines is not None:
            await self.engines.close()

    async def close(self) -> None:
        await self.stop_workers()
        await self.wakeup.close()
        await self.db.dispose()


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
