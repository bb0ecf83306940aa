"""Where an idle task stands in the queue, without counting the queue on every poll.

Clients poll the result of a waiting task every second or so, and each answer carries its
`queue_position` (an extension): counting the idle tasks ahead of it cost one read that grows
with the queue, on the hottest route. Instead the store keeps a snapshot of the idle queue's
order (enqueued_at, id), read at most once per `max_age` seconds, and answers a position by
bisection. What this process does to the queue (creates, claims, cancels) is applied to the
snapshot at once, so a node's own changes show in its next answer; what other processes do
shows within `max_age`. Past `limit` idle tasks the snapshot is cut short, and a task beyond it
is counted in the database as before.

Reading the snapshot costs what the queue holds (about 2 ms per 1,000 idle tasks), so a long
queue is read less often: never more than REFRESH_SHARE of the time goes to reading it (with
40,000 idle tasks, once every few seconds instead of every second).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Iterable

import sqlalchemy as sa

from darkroom.db import Database, tasks
from darkroom.tasks.model import Task, TaskStatus

Entry = tuple[float, str]  # (enqueued_at, id): the queue's order
REFRESH_SHARE = 0.05
PAGE = 2000  # rows per read of the snapshot
_IDLE = tasks.c.status == TaskStatus.IDLE.value


class QueuePositions:
    def __init__(
        self, db: Database, *, max_age: float = 1.0, limit: int = 100_000, page: int = PAGE
    ) -> None:
        self.db = db
        self.max_age = max_age
        self.limit = limit
        self.page = page
        self._order: list[Entry] = []
        self._ids: set[str] = set()
        self._read_at: float | None = None  # None: never read, or known to be stale
        self._age_allowed = max_age  # max_age, or longer while reads of the queue take long
        self._refreshing = asyncio.Lock()
        # Changes made while a refresh reads: replayed on what it read, which may or may not
        # have seen them.
        self._journal: list[tuple[bool, Entry]] | None = None

    async def of(self, task: Task) -> int:
        """Idle tasks enqueued before this one (0: next in line)."""
        if self._read_at is None or time.monotonic() - self._read_at > self._age_allowed:
            await self._refresh()
        if len(self._order) >= self.limit and task.enqueued_at > self._order[-1][0]:
            return await self._count_before(task)
        return bisect.bisect_left(self._order, (task.enqueued_at, ""))

    def added(self, task: Task) -> None:
        self._apply(True, (task.enqueued_at, task.id))

    def removed(self, removed: Iterable[Task]) -> None:
        for task in removed:
            self._apply(False, (task.enqueued_at, task.id))

    def stale(self) -> None:
        """Tasks went back to the queue in a way not applied here: read it again when next
        asked."""
        self._read_at = None

    def _apply(self, add: bool, entry: Entry) -> None:
        if self._journal is not None:
            self._journal.append((add, entry))
        if add and entry[1] not in self._ids:
            bisect.insort(self._order, entry)
            self._ids.add(entry[1])
        elif not add and entry[1] in self._ids:
            del self._order[bisect.bisect_left(self._order, entry)]
            self._ids.discard(entry[1])

    async def _refresh(self) -> None:
        if self._refreshing.locked():  # another poll is reading it: its answer will do
            async with self._refreshing:
                return
        async with self._refreshing:
            started = time.monotonic()
            self._journal = []
            try:
                order = await self._read()
            finally:
                journal, self._journal = self._journal, None
            self._order, self._ids = order, {task_id for _, task_id in order}
            for add, entry in journal:
                self._apply(add, entry)
            self._read_at = started
            took = time.monotonic() - started
            self._age_allowed = max(self.max_age, took / REFRESH_SHARE)

    async def _read(self) -> list[Entry]:
        """The idle queue's order, read in pages (keyset on the index's order) so that neither
        the database nor the event loop is held for a long queue at once."""
        order: list[Entry] = []
        after: Entry | None = None
        while len(order) < self.limit:
            query = (
                sa.select(tasks.c.enqueued_at, tasks.c.id)
                .where(_IDLE)
                .order_by(tasks.c.enqueued_at, tasks.c.id)
                .limit(min(self.page, self.limit - len(order)))
            )
            if after is not None:
                query = query.where(sa.tuple_(tasks.c.enqueued_at, tasks.c.id) > after)
            async with self.db.read() as conn:
                page = [(at, task_id) for at, task_id in (await conn.execute(query)).all()]
            order += page
            if len(page) < self.page:
                return order
            after = page[-1]
            await asyncio.sleep(0)  # the requests that came in meanwhile go first
        return order

    async def _count_before(self, task: Task) -> int:
        query = (
            sa.select(sa.func.count())
            .select_from(tasks)
            .where(_IDLE, tasks.c.enqueued_at < task.enqueued_at)
        )
        async with self.db.read() as conn:
            return (await conn.execute(query)).scalar_one()
