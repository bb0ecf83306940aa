"""The outbox: one delivery row per ended task that has a callback URL, written by
`enqueue` in the very transaction that ends the task (tasks/store.py's `_finish`), so a task
never ends without its delivery, whatever crashes afterwards.

Senders take due deliveries with a lease, as workers take tasks: `claim` sets the sender as
`lease_owner` and moves `next_attempt_at` to the end of the lease in one statement (SKIP
LOCKED on PostgreSQL, the write lock on SQLite), so two senders never hold one delivery at
once, and a sender that dies lets go of it when its lease runs out. `record` writes the
attempt and the delivery's next state, fenced by owner and attempt count: a sender whose lease
ran out cannot move a delivery another sender has taken since.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from darkroom.db import Connection, Database
from darkroom.db.schema import webhook_attempts, webhook_deliveries

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
deliveries = webhook_deliveries


@dataclass(frozen=True)
class Delivery:
    task_id: str
    key_id: int
    url: str
    status: str
    attempts: int
    """Attempts recorded so far."""
    created_at: float
    next_attempt_at: float
    lease_owner: str | None = None
    finished_at: float | None = None

    @property
    def message_id(self) -> str:
        """The `webhook-id`: the same on every attempt, so receivers can de-duplicate."""
        return f"msg_{self.task_id}"

    @classmethod
    def from_row(cls, row: Any) -> Delivery:
        return cls(**row._mapping)


@dataclass(frozen=True)
class Attempt:
    attempt: int
    attempted_at: float
    status_code: int | None
    """None: no answer (refused, unreachable, too slow); `error` says which."""
    latency_ms: int
    error: str | None = None


async def enqueue(conn: Connection, ended: Sequence[Any]) -> None:
    """Deliveries for the ended tasks among `ended` (rows of id, key_id, callback_url) that
    have a callback URL, due now; in the caller's transaction."""
    now = time.time()
    rows = [
        {
            "task_id": task.id,
            "key_id": task.key_id,
            "url": task.callback_url,
            "status": PENDING,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
        }
        for task in ended
        if task.callback_url
    ]
    if rows:
        await conn.execute(deliveries.insert(), rows)


class Outbox:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._lock_rows = not db.is_sqlite

    async def any_due(self) -> bool:
        """Whether a delivery is due: a read, so an idle sender never takes the write lock."""
        query = sa.select(deliveries.c.task_id).where(_due(time.time())).limit(1)
        async with self.db.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def claim(self, owner: str, *, limit: int, lease_seconds: float) -> list[Delivery]:
        """Leases up to `limit` due deliveries, the longest due first."""
        now = time.time()
        chosen = (
            sa.select(deliveries.c.task_id)
            .where(_due(now))
            .order_by(deliveries.c.next_attempt_at)
            .limit(limit)
        )
        if self._lock_rows:
            # As in the task claim (tasks/store.py): a MATERIALIZED CTE keeps the LIMIT.
            locked = chosen.with_for_update(skip_locked=True).cte("chosen")
            target = deliveries.c.task_id == locked.prefix_with("MATERIALIZED").c.task_id
        else:
            target = deliveries.c.task_id.in_(chosen)
        claim = (
            deliveries.update()
            .where(target, _due(now))
            .values(lease_owner=owner, next_attempt_at=now + lease_seconds)
            .returning(*deliveries.c)
        )
        async with self.db.write() as conn:
            rows = (await conn.execute(claim)).all()
        return [Delivery.from_row(row) for row in rows]

    async def record(
        self, delivery: Delivery, owner: str, attempt: Attempt, *, status: str, next_at: float
    ) -> bool:
        """Writes the attempt, and the delivery's new state where this owner still holds it:
        `status` (pending again from `next_at`, delivered or failed). False when the lease
        was lost meanwhile (the attempt is written all the same: it was made)."""
        held = sa.and_(
            deliveries.c.task_id == delivery.task_id,
            deliveries.c.lease_owner == owner,
            deliveries.c.attempts == delivery.attempts,
            deliveries.c.status == PENDING,
        )
        ended = None if status == PENDING else attempt.attempted_at
        async with self.db.write() as conn:
            await conn.execute(
                webhook_attempts.insert().values(task_id=delivery.task_id, **vars(attempt))
            )
            moved = await conn.execute(
                deliveries.update()
                .where(held)
                .values(
                    status=status,
                    attempts=deliveries.c.attempts + 1,
                    next_attempt_at=next_at,
                    lease_owner=None,
                    finished_at=ended,
                )
            )
        return moved.rowcount > 0

    async def of_task(self, task_id: str) -> tuple[Delivery | None, list[Attempt]]:
        """The task's delivery (None: it has none) and its attempts, oldest first."""
        attempts = (
            sa.select(webhook_attempts)
            .where(webhook_attempts.c.task_id == task_id)
            .order_by(webhook_attempts.c.id)
        )
        async with self.db.read() as conn:
            row = (
                await conn.execute(sa.select(deliveries).where(deliveries.c.task_id == task_id))
            ).one_or_none()
            tried = (await conn.execute(attempts)).all()
        return (
            Delivery.from_row(row) if row else None,
            [_attempt_of(r) for r in tried],
        )


def _due(now: float) -> sa.ColumnElement[bool]:
    return sa.and_(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now)


def _attempt_of(row: Any) -> Attempt:
    return Attempt(
        attempt=row.attempt,
        attempted_at=row.attempted_at,
        status_code=row.status_code,
        latency_ms=row.latency_ms,
        error=row.error,
    )
