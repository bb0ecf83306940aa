"""The composition root: `App` builds every part from settings, for the API process and for
worker processes alike, and closes them in order. Open it as an async context manager:

    async with App.from_settings(settings) as app:
        await app.migrate()
        app.start_maintenance()
        app.start_workers(2)
        ...

Every API and worker process runs the maintenance service, which does its work only on the
node elected to lead it (maintenance.py), and the webhook sender (webhooks/sender.py), which
shares the outbox with the other nodes' by leases; `start_maintenance` starts both and
`start_workers` starts it too, so a node of workers alone takes part. HTTP routes reach the
App through one FastAPI dependency (`api.deps.CurrentApp`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from types import TracebackType

import structlog

from darkroom.backoff import Backoff
from darkroom.config import Settings, SettingsFile
from darkroom.db import Database
from darkroom.db.migrate import migrate
from darkroom.engines import Catalog
from darkroom.fetch import Fetcher, FetchLimits
from darkroom.keys import KeyStore
from darkroom.keys.rate import RateLimiter
from darkroom.maintenance import Maintenance
from darkroom.safety import ContentPolicy
from darkroom.storage import Storage, open_storage
from darkroom.tasks import TaskStore
from darkroom.webhooks.outbox import Outbox
from darkroom.webhooks.sender import Schedule, Sender
from darkroom.worker import EnginePool, Wakeup, Worker
from darkroom.worker.loop import new_owner_name
from darkroom.worker.wakeup import wakeup_for

log = structlog.get_logger("darkroom")


@dataclass
class App:
    settings: Settings
    db: Database
    keys: KeyStore
    store: TaskStore
    storage: Storage
    catalog: Catalog
    policy: ContentPolicy
    rate: RateLimiter
    wakeup: Wakeup = field(default_factory=Wakeup)
    # The one guarded fetcher of outbound requests (DARKROOM_ALLOW_PRIVATE_URLS lifts its rule).
    fetcher: Fetcher = field(default_factory=Fetcher)
    engines: EnginePool | None = None
    workers: list[Worker] = field(default_factory=list)
    maintenance: Maintenance | None = None
    sender: Sender | None = None
    _running: list[asyncio.Task[None]] = field(default_factory=list)
    _maintaining: asyncio.Task[None] | None = None
    _sending: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> App:
        """Builds the parts without touching the network; a configuration that cannot work
        raises here, before anything is opened."""
        # Private (0700): it holds the secret, the SQLite database and the results.
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        _ = settings.signing_secret  # a weak secret stops the node here, whatever the storage
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
            keys=KeyStore(db, cache_seconds=settings.key_cache_seconds),
            store=TaskStore(db, key_limits=settings.key_limits),
            rate=RateLimiter(db),
            storage=open_storage(settings),
            catalog=file.catalog,
            policy=file.policy,
            wakeup=wakeup_for(db, settings),
        )

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def migrate(self) -> None:
        """Readies the shared parts every node starts with: the schema and the storage."""
        await migrate(self.db)
        await self.storage.prepare()

    def start_maintenance(self) -> None:
        """Joins the election for maintenance (once per process; later calls do nothing)."""
        if self.maintenance is not None:
            return
        self.maintenance = Maintenance(
            self.store,
            self.storage,
            owner=new_owner_name("maintenance"),
            lease_seconds=self.settings.lease_seconds,
            retention_seconds=self.settings.retention_seconds,
            sweep_seconds=self.settings.sweep_seconds,
            record_retention_seconds=self.settings.record_retention_seconds,
            on_requeued=self.wakeup.notify,
        )
        self._maintaining = asyncio.create_task(self.maintenance.run(), name="maintenance")
        self.start_sender()

    async def stop_maintenance(self) -> None:
        """Stops taking part, giving up the lead if this node held it."""
        if self.maintenance is None or self._maintaining is None:
            return
        self.maintenance.stop()
        await asyncio.gather(self._maintaining, return_exceptions=True)
        self.maintenance = self._maintaining = None

    def start_sender(self) -> None:
        """Starts posting due webhooks (once per process; later calls do nothing)."""
        if self.sender is not None:
            return
        settings = self.settings
        backoff = Backoff(
            first=settings.webhook_backoff_first_seconds,
            cap=settings.webhook_backoff_cap_seconds,
            jitter=True,
        )
        # A receiver's answer is not used: reading at most 64 KB of it keeps a huge one cheap.
        limits = FetchLimits(max_bytes=64 * 1024, timeout_seconds=settings.webhook_timeout_seconds)
        self.sender = Sender(
            Outbox(self.db),
            self.store,
            self.keys,
            self.storage,
            dataclasses.replace(self.fetcher, limits=limits),
            Schedule(backoff, retry_seconds=settings.webhook_retry_hours * 3600),
            owner=new_owner_name("webhooks"),
            retention_seconds=settings.retention_seconds,
            poll_seconds=settings.webhook_poll_seconds,
        )
        self._sending = asyncio.create_task(self.sender.run(), name="webhooks")

    async def stop_sender(self) -> None:
        """Stops claiming deliveries and lets the posts in hand finish."""
        if self.sender is None or self._sending is None:
            return
        self.sender.stop()
        await asyncio.gather(self._sending, return_exceptions=True)
        self.sender = self._sending = None

    def start_workers(self, count: int, models: list[str] | None = None) -> None:
        if count <= 0:
            return
        self.start_maintenance()
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
                fetcher=self.fetcher,
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
        await self.stop_maintenance()
        await self.stop_sender()
        await self.wakeup.close()
        await self.db.dispose()
