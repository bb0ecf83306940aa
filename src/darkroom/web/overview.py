"""What the console shows of the queue, read straight off the task table (which is the queue):
tasks by model and status, the workers that hold leases now, and the latest failures.

Workers are known only by the leases they hold: a worker that holds none (idle, or between
batches) leaves no row anywhere, so the console lists the workers at work and what they work
on, not every process that is running.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from darkroom.db import Database, tasks
from darkroom.errors import CANCELED_MESSAGE
from darkroom.tasks import TaskStatus


@dataclass(frozen=True)
class QueueCount:
    model: str
    status: str
    tasks: int


@dataclass(frozen=True)
class WorkerLoad:
    owner: str
    model: str
    tasks: int
    lease_expires_at: float | None


@dataclass(frozen=True)
class Failure:
    id: str
    key_id: int
    model: str
    message: str | None
    attempt: int
    finished_at: float | None


async def queue_counts(db: Database) -> list[QueueCount]:
    query = (
        sa.select(tasks.c.model, tasks.c.status, sa.func.count())
        .group_by(tasks.c.model, tasks.c.status)
        .order_by(tasks.c.model, tasks.c.status)
    )
    async with db.read() as conn:
        return [QueueCount(*row) for row in (await conn.execute(query)).all()]


async def workers_at_work(db: Database) -> list[WorkerLoad]:
    """Each lease owner with the model it is generating and how many tasks it holds."""
    query = (
        sa.select(
            tasks.c.lease_owner,
            tasks.c.model,
            sa.func.count(),
            sa.func.max(tasks.c.lease_expires_at),
        )
        .where(tasks.c.status == TaskStatus.PROCESSING.value, tasks.c.lease_owner.is_not(None))
        .group_by(tasks.c.lease_owner, tasks.c.model)
        .order_by(tasks.c.lease_owner, tasks.c.model)
    )
    async with db.read() as conn:
        return [WorkerLoad(*row) for row in (await conn.execute(query)).all()]


async def recent_failures(db: Database, limit: int) -> list[Failure]:
    """The latest failed tasks, newest first, on the (status, finished_at) index; tasks their
    owners canceled are not failures and are left out."""
    query = (
        sa.select(
            tasks.c.id,
            tasks.c.key_id,
            tasks.c.model,
            tasks.c.message,
            tasks.c.attempt,
            tasks.c.finished_at,
        )
        .where(
            tasks.c.status == TaskStatus.FAILED.value,
            sa.or_(tasks.c.message.is_(None), tasks.c.message != CANCELED_MESSAGE),
        )
        .order_by(tasks.c.finished_at.desc())
        .limit(limit)
    )
    async with db.read() as conn:
        return [Failure(*row) for row in (await conn.execute(query)).all()]
