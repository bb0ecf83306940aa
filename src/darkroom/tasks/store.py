"""The task store. Its table is the queue: a worker claims idle tasks by taking a lease
(owner, expiry, attempt) in one statement, extends it while it works, and finishes the task
only if it still holds that lease, so a worker that lost its lease can never overwrite a newer
attempt's result.

Every way out of `processing` (done, failed, canceled, retried, released, rescued after the
lease expired) and the cancel of an idle task is one statement, `_finish`: river's "set state if
still running". It sets the new state only where its fence still holds (and never on a task that
has already finished), clears the lease, and gives the key the task's cost back when the task
failed, in the same transaction (keys/balance.py). The refund itself is guarded too: it marks
the task refunded where it was not yet, and gives back only what that marked, so no path can
refund a task twice. A task that ends (done or failed, canceled too) with a callback URL gets
its webhook delivery in the same transaction (webhooks/outbox.py), so no crash loses one.
A canceled task is never put back in the queue, whichever way its worker lets go of it
(tests/integration/test_store_conformance.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from darkroom.backoff import Backoff
from darkroom.db import Connection, Database, idempotency, tasks
from darkroom.db.schema import webhook_attempts, webhook_deliveries
from darkroom.errors import CANCELED_MESSAGE
from darkroom.keys import NO_LIMITS, ApiKey, Limits, balance
from darkroom.tasks import fair
from darkroom.tasks.admission import (
    Admission,
    Idempotency,
    IdempotencyMismatch,
    InsufficientFunds,
    KeyLimitReached,
    QueueFull,
)
from darkroom.tasks.model import NewTask, ResultFile, Task, TaskStatus
from darkroom.tasks.positions import QueuePositions
from darkroom.webhooks import outbox

__all__ = [
    "Idempotency",
    "IdempotencyMismatch",
    "InsufficientFunds",
    "KeyLimitReached",
    "QueueFull",
    "TaskStore",
]

IDLE, PROCESSING, DONE, FAILED = (s.value for s in TaskStatus)
LEASE_LOST_MESSAGE = (
    "The worker generating this image stopped responding on every attempt; "
    "the task was given up. Please create it again."
)
# Where a task stands in its key's listing, newest first: (enqueued_at, id).
TaskPosition = tuple[float, str]
# A task's new state: the columns `_finish` sets (always with `status`).
State = dict[str, Any]


# Built once: the reads of the result route, the hottest path of a busy server (clients poll).
_BY_ID = sa.select(tasks).where(tasks.c.id == sa.bindparam("task_id"))
_BY_ID_OF_KEY = _BY_ID.where(tasks.c.key_id == sa.bindparam("key_id"))

# Seconds before a failed attempt is tried again: 2, 4, 8, ... capped at a minute.
RETRY_BACKOFF = Backoff(first=1.0, factor=2.0, cap=60.0, jitter=False)


def retry_delay(attempt: int) -> float:
    return RETRY_BACKOFF.delay(attempt)


class TaskStore:
    def __init__(
        self,
        db: Database,
        *,
        queue_snapshot_seconds: float = 1.0,
        key_limits: Limits = NO_LIMITS,
    ) -> None:
        self.db = db
        self.key_limits = key_limits  # the server's defaults for keys that set none
        # PostgreSQL lets concurrent workers skip each other's rows; SQLite has one writer anyway.
        self._lock_rows = not db.is_sqlite
        self._admission = Admission(db, key_limits)
        self._positions = QueuePositions(db, max_age=queue_snapshot_seconds)

    # -- the API's side -----------------------------------------------------------------

    async def create(
        self,
        new: NewTask,
        key: ApiKey,
        *,
        max_queue: int,
        idempotency: Idempotency | None = None,
    ) -> Task:
        """Queues a task, charging the key its cost; durable when this returns. A refused
        task (QueueFull, InsufficientFunds) is neither queued nor charged. Creates arriving
        together share one transaction (tasks/admission.py)."""
        task = await self._admission.create(new, key, max_queue=max_queue, idempotency=idempotency)
        self._positions.added(task)
        return task

    async def get(self, task_id: str, key_id: int | None = None) -> Task | None:
        """The task, or None; with a key id, only that key's task."""
        if key_id is None:
            query, values = _BY_ID, {"task_id": task_id}
        else:
            query, values = _BY_ID_OF_KEY, {"task_id": task_id, "key_id": key_id}
        async with self.db.lookup() as conn:
            row = (await conn.execute(query, values)).one_or_none()
        return Task.from_row(row) if row else None

    async def count_by_status(self) -> dict[str, int]:
        query = sa.select(tasks.c.status, sa.func.count()).group_by(tasks.c.status)
        async with self.db.read() as conn:
            counts = {status: count for status, count in (await conn.execute(query)).all()}
        return {status.value: counts.get(status.value, 0) for status in TaskStatus}

    async def queue_position(self, task: Task) -> int:
        """Idle tasks enqueued before this one (0: next in line): exact for this process's own
        changes, within a second for other processes' (tasks/positions.py)."""
        return await self._positions.of(task)

    async def cancel(self, task_id: str, key_id: int) -> Task | None:
        """The owner's cancel: an idle task fails at once with "canceled" (and its cost comes
        back); a processing one is flagged for its worker, which stops it at the next denoising
        step; a finished one is left as it is. Returns the task as it now stands, or None."""
        mine = sa.and_(tasks.c.id == task_id, tasks.c.key_id == key_id)
        async with self.db.write() as conn:
            # The row is locked first: on PostgreSQL a worker may be moving it from processing
            # back to idle at this moment, and two unlocked updates could both miss it.
            status = (
                await conn.execute(sa.select(tasks.c.status).where(mine).with_for_update())
            ).scalar_one_or_none()
            if status == IDLE:
                idle = sa.and_(mine, tasks.c.status == IDLE)
                await _finish(conn, idle, {**_canceled(), "cancel_requested": True})
            elif status == PROCESSING:
                await conn.execute(tasks.update().where(mine).values(cancel_requested=True))
        task = await self.get(task_id, key_id)
        if status == IDLE and task is not None:
            self._positions.removed([task])
        return task

    async def newest_of_key(
        self, key_id: int, *, limit: int, before: TaskPosition | None = None
    ) -> list[Task]:
        """Up to `limit` of the key's tasks, newest first: those created before `before` (the
        position of the last task of the previous page), or the newest. A keyset page on the
        (key_id, enqueued_at, id) index: each costs its rows, however many pages came before,
        and a task created meanwhile never shifts the later pages."""
        order = (tasks.c.enqueued_at, tasks.c.id)
        query = sa.select(tasks).where(tasks.c.key_id == key_id)
        if before is not None:
            query = query.where(sa.tuple_(*order) < sa.tuple_(*before))
        query = query.order_by(*(column.desc() for column in order)).limit(limit)
        async with self.db.read() as conn:
            return [Task.from_row(row) for row in (await conn.execute(query)).all()]

    # -- the worker's side --------------------------------------------------------------

    async def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        models: Sequence[str] | None = None,
        batch_key: str | None = None,
    ) -> list[Task]:
        """Leases up to `limit` ready tasks that can share one engine call, the keys taking
        turns (tasks/fair.py).

        With no batch key, the oldest ready task (of the given models) of the key whose turn it
        is chooses it.
        """
        now = time.time()
        async with self.db.write() as conn:
            if batch_key is None:
                batch_key = await self._next_batch_key(conn, now, models)
                if batch_key is None:
                    return []
            rows = (
                await conn.execute(self._lease(batch_key, now, limit, owner, lease_seconds))
            ).all()
            claimed = sorted((Task.from_row(row) for row in rows), key=lambda t: t.enqueued_at)
            await fair.advance(conn, claimed, now)
        self._positions.removed(claimed)
        return claimed

    async def _next_batch_key(
        self, conn: Connection, now: float, models: Sequence[str] | None
    ) -> str | None:
        """The batch key of the oldest ready task of the first key in turn that has one no
        concurrent claim holds."""
        in_turn = fair.keys_in_turn(now, models, self.key_limits.max_running)
        for key_id in (await conn.execute(in_turn)).scalars().all():
            leader = fair.oldest_batch_key(key_id, now, models, lock=self._lock_rows)
            found = (await conn.execute(leader)).scalar_one_or_none()
            if found is not None:
                return found
        return None

    def _lease(
        self, batch_key: str, now: float, limit: int, owner: str, lease_seconds: float
    ) -> sa.Update:
        """The claim: the chosen tasks (still idle) leased to this owner, in one UPDATE."""
        chosen = fair.in_turn(batch_key, now, limit, self.key_limits.max_running)
        if self._lock_rows:
            # PostgreSQL: lock the chosen rows in a MATERIALIZED CTE and join the update to it.
            # Written as `id IN (SELECT ... LIMIT n FOR UPDATE SKIP LOCKED)`, the subquery can
            # be re-evaluated under concurrent claims and the LIMIT escapes: one claim of
            # limit 1 was seen to take a hundred tasks (tests/integration/test_postgres.py).
            # The window function that orders the turns cannot take FOR UPDATE itself, so the
            # rows it chose are locked by a second select (a row another claim holds is left
            # out of this batch).
            locked = (
                sa.select(tasks.c.id)
                .where(tasks.c.id.in_(chosen))
                .with_for_update(skip_locked=True)
                .cte("chosen")
                .prefix_with("MATERIALIZED")
            )
            target = tasks.c.id == locked.c.id
        else:
            target = tasks.c.id.in_(chosen)
        return (
            tasks.update()
            .where(target, tasks.c.status == IDLE)
            .values(
                status=PROCESSING,
                lease_owner=owner,
                lease_expires_at=now + lease_seconds,
                attempt=tasks.c.attempt + 1,
                started_at=now,
                progress=0,
            )
            .returning(*tasks.c)
        )

    async def beat(
        self,
        owner: str,
        task_ids: Iterable[str],
        *,
        lease_seconds: float | None = None,
        progress: int | None = None,
    ) -> int:
        """One write for a batch's heartbeat: extends its leases, records its progress (0-100),
        or both, for the tasks this owner still holds."""
        values: dict[str, object] = {}
        if lease_seconds is not None:
            values["lease_expires_at"] = time.time() + lease_seconds
        if progress is not None:
            values["progress"] = progress
        if not values:
            return 0
        async with self.db.write() as conn:
            result = await conn.execute(
                tasks.update()
                .where(
                    tasks.c.id.in_(list(task_ids)),
                    tasks.c.lease_owner == owner,
                    tasks.c.status == PROCESSING,
                )
                .values(**values)
            )
        return result.rowcount

    async def cancel_requested(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks their owners asked to cancel (a read by primary key)."""
        query = sa.select(tasks.c.id).where(
            tasks.c.id.in_(list(task_ids)), tasks.c.cancel_requested.is_(True)
        )
        async with self.db.read() as conn:
            return set((await conn.execute(query)).scalars().all())

    async def complete(
        self, task: Task, owner: str, result_key: str, files: Sequence[ResultFile] = ()
    ) -> bool:
        """Marks the task done if this owner's attempt still holds the lease; `files` are all
        its stored files (an audio model's tracks), `result_key` the first one's."""
        async with self.db.write() as conn:
            return await _finish(conn, _held(task, owner), _done(result_key, files)) > 0

    async def fail(self, task: Task, owner: str, message: str, *, retry: bool) -> TaskStatus | None:
        """Gives the task back to the queue (when retry is allowed and attempts remain) or fails
        it for good, refunding its cost. Returns the new status, or None if the lease was lost."""
        again = retry and task.attempt < task.max_attempts
        state = _retried(task.attempt) if again else _failed(message)
        async with self.db.write() as conn:
            if again and await _end_if_canceled(conn, task, owner):
                return TaskStatus.FAILED
            if not await _finish(conn, _held(task, owner), state):
                return None
        if again:
            self._positions.stale()  # back in the queue, in its old place
        return TaskStatus(state["status"])

    async def release(self, claimed: Iterable[Task], owner: str) -> int:
        """Puts tasks back unstarted (a worker shutting down); the attempt does not count."""
        released = 0
        async with self.db.write() as conn:
            for task in claimed:
                if not await _end_if_canceled(conn, task, owner):
                    released += await _finish(conn, _held(task, owner), _released())
        if released:
            self._positions.stale()
        return released

    async def requeue_expired(self) -> tuple[int, int]:
        """Tasks whose worker stopped heartbeating go back to idle, or fail after their last
        attempt; a canceled one is not run again but ends as its owner asked. Returns
        (requeued, failed)."""
        expired = sa.and_(tasks.c.status == PROCESSING, tasks.c.lease_expires_at < time.time())
        attempts_left = tasks.c.attempt < tasks.c.max_attempts
        async with self.db.write() as conn:
            await _finish(conn, sa.and_(expired, tasks.c.cancel_requested.is_(True)), _canceled())
            requeued = await _finish(conn, sa.and_(expired, attempts_left), _requeued())
            failed = await _finish(conn, sa.and_(expired, ~attempts_left), _lease_lost())
        if requeued:
            self._positions.stale()
        return requeued, failed

    # -- retention ----------------------------------------------------------------------

    async def expired_results(self, finished_before: float, limit: int = 500) -> list[Task]:
        query = (
            sa.select(tasks)
            .where(
                tasks.c.status == DONE,
                tasks.c.finished_at < finished_before,
                tasks.c.purged_at.is_(None),
            )
            .limit(limit)
        )
        async with self.db.read() as conn:
            return [Task.from_row(row) for row in (await conn.execute(query)).all()]

    async def delete_finished(self, finished_before: float, limit: int = 1000) -> int:
        """Deletes up to `limit` task records that ended before `finished_before` (a done one
        only once its file is purged), with their idempotency records and webhook deliveries;
        how many went."""
        gone = sa.or_(tasks.c.status == FAILED, tasks.c.purged_at.is_not(None))
        old = (
            sa.select(tasks.c.id)
            .where(tasks.c.status.in_([DONE, FAILED]), gone, tasks.c.finished_at < finished_before)
            .limit(limit)
        )
        async with self.db.write() as conn:
            task_ids = list((await conn.execute(old)).scalars().all())
            if task_ids:
                for table in (idempotency, webhook_attempts, webhook_deliveries):
                    await conn.execute(table.delete().where(table.c.task_id.in_(task_ids)))
                await conn.execute(tasks.delete().where(tasks.c.id.in_(task_ids)))
        return len(task_ids)

    async def forget_idempotency(self, created_before: float) -> int:
        """Deletes the idempotency records made before then (they answer for a day only)."""
        async with self.db.write() as conn:
            result = await conn.execute(
                idempotency.delete().where(idempotency.c.created_at < created_before)
            )
        return result.rowcount

    async def mark_purged(self, task_ids: Sequence[str]) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                tasks.update().where(tasks.c.id.in_(task_ids)).values(purged_at=time.time())
            )


async def _finish(conn: Connection, where: sa.ColumnElement[bool], state: State) -> int:
    """The one transition: sets `state` on the unfinished tasks `where` selects, clears their
    lease, and refunds each task that failed. Returns how many tasks changed (0: the fence did
    not hold)."""
    unfinished = tasks.c.status.in_([IDLE, PROCESSING])
    rows = (
        await conn.execute(
            tasks.update()
            .where(where, unfinished)
            .values(**state, lease_owner=None, lease_expires_at=None)
            .returning(tasks.c.id, tasks.c.key_id, tasks.c.callback_url)
        )
    ).all()
    if state["status"] == FAILED and rows:
        await _refund(conn, [row.id for row in rows])
    if state["status"] in (DONE, FAILED):
        await outbox.enqueue(conn, rows)
    return len(rows)


async def _refund(conn: Connection, task_ids: list[str]) -> None:
    """Gives the tasks' costs back to their keys, for the tasks not refunded before."""
    refunded = (
        await conn.execute(
            tasks.update()
            .where(tasks.c.id.in_(task_ids), tasks.c.refunded_at.is_(None), tasks.c.cost > 0)
            .values(refunded_at=time.time())
            .returning(tasks.c.key_id, tasks.c.cost)
        )
    ).all()
    amounts: dict[int, Decimal] = defaultdict(Decimal)
    for row in refunded:
        amounts[row.key_id] += row.cost
    await balance.refund(conn, amounts)


def _held(task: Task, owner: str) -> sa.ColumnElement[bool]:
    """The fence: the task still runs this owner's attempt."""
    return sa.and_(
        tasks.c.id == task.id,
        tasks.c.lease_owner == owner,
        tasks.c.attempt == task.attempt,
        tasks.c.status == PROCESSING,
    )


async def _end_if_canceled(conn: Connection, task: Task, owner: str) -> bool:
    """A task its owner canceled while it ran is never put back in the queue: it fails
    "canceled" (with its cost back) instead. True when that happened."""
    canceled = sa.and_(_held(task, owner), tasks.c.cancel_requested.is_(True))
    return await _finish(conn, canceled, _canceled()) > 0


# -- the states a task can be finished into ---------------------------------------------------


def _done(result_key: str, files: Sequence[ResultFile] = ()) -> State:
    listed = [file.to_json() for file in files] or None
    return {
        "status": DONE,
        "result_key": result_key,
        "result_files": listed,
        "finished_at": time.time(),
        "progress": 100,
    }


def _failed(message: str) -> State:
    return {"status": FAILED, "message": message, "finished_at": time.time()}


def _canceled() -> State:
    return {**_failed(CANCELED_MESSAGE), "progress": None}


def _lease_lost() -> State:
    return _failed(LEASE_LOST_MESSAGE)


def _retried(attempt: int) -> State:
    """Back in the queue after a failed attempt, once its retry delay has passed."""
    return {**_requeued(), "run_after": time.time() + retry_delay(attempt)}


def _requeued() -> State:
    return {"status": IDLE, "progress": None}


def _released() -> State:
    """Back in the queue as if never claimed: the attempt does not count."""
    return {**_requeued(), "attempt": tasks.c.attempt - 1}
