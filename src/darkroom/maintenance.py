"""Maintenance: the work an installation needs done somewhere, by one node at a time, as
river elects the node that runs its rescuer and cleaner.

- The rescue: tasks whose worker stopped heartbeating go back to the queue, or fail after
  their last attempt (TaskStore.requeue_expired), every third of a lease.
- The retention sweep: result files past the retention period are deleted, and task records
  past theirs (retention.py), every `sweep_seconds`.

Every API and worker process runs this service (App starts it); each tick it takes or renews
the lead (db/leader.py) and only the leader does the work. The lead lasts one task lease, so a
leader that dies is replaced about a lease later, and its dead workers' tasks, whose leases
are as long, are rescued in the same time. Two leaders at once (clocks more than a lease
apart) would be harmless: each job is statements fenced by the rows' own state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import structlog

from darkroom.db.leader import LeaderLease
from darkroom.retention import sweep_once
from darkroom.storage import Storage
from darkroom.tasks import TaskStore

log = structlog.get_logger("darkroom.maintenance")

SERVICE = "maintenance"
MIN_TICK_SECONDS = 0.5


class Maintenance:
    def __init__(
        self,
        store: TaskStore,
        storage: Storage,
        *,
        owner: str,
        lease_seconds: float,
        retention_seconds: float,
        sweep_seconds: float,
        record_retention_seconds: float | None = None,
        on_requeued: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        # Announces rescued tasks (the wakeup's notify): idle workers that listen on
        # PostgreSQL would otherwise find them only at their slow safety poll.
        self.on_requeued = on_requeued
        self.storage = storage
        self.lease = LeaderLease(store.db, SERVICE, owner, seconds=lease_seconds)
        self.retention_seconds = retention_seconds
        self.record_retention_seconds = record_retention_seconds
        self.rescue_every = max(lease_seconds / 3, MIN_TICK_SECONDS)
        self.sweep_every = sweep_seconds
        self.leading = False
        self._stopping = asyncio.Event()
        self._next_rescue = self._next_sweep = 0.0

    @property
    def tick(self) -> float:
        """How often the lead is renewed (well within a lease) and jobs looked at."""
        return max(min(self.rescue_every, self.sweep_every), MIN_TICK_SECONDS / 5)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until stopped: takes part in the election and, while leading, does the jobs due."""
        try:
            while not self._stopping.is_set():
                try:
                    await self._elect()
                    if self.leading:
                        await self._run_due_jobs()
                except Exception:
                    # The database may be briefly unreachable; try again at the next tick.
                    log.exception("maintenance failed", owner=self.lease.owner)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.tick)
        finally:
            await self._resign()

    async def _elect(self) -> None:
        leading = await self.lease.take()
        if leading and not self.leading:
            log.info("leading maintenance", owner=self.lease.owner)
            self._next_rescue = self._next_sweep = 0.0  # the jobs start at once
        elif self.leading and not leading:
            log.warning("no longer leading maintenance", owner=self.lease.owner)
        self.leading = leading

    async def _run_due_jobs(self) -> None:
        now = time.monotonic()
        if now >= self._next_rescue:
            self._next_rescue = now + self.rescue_every
            await self.rescue()
        if now >= self._next_sweep:
            self._next_sweep = now + self.sweep_every
            await sweep_once(
                self.store, self.storage, self.retention_seconds, self.record_retention_seconds
            )

    async def rescue(self) -> None:
        requeued, failed = await self.store.requeue_expired()
        if requeued or failed:
            log.warning("expired leases", requeued=requeued, failed=failed)
        if requeued:
            self.on_requeued()

    async def _resign(self) -> None:
        if not self.leading:
            return
        self.leading = False
        try:
            await self.lease.give_up()
        except Exception:  # it lapses by itself after a lease
            log.exception("could not give up the maintenance lead", owner=self.lease.owner)
