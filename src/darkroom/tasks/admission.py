"""Group commit for creates: every create waiting for the database joins one transaction.

A create is durable before it is answered (SQLite runs with synchronous=FULL, PostgreSQL
commits), so one transaction per create made creates wait in line for one fsync each. Here the
first create to arrive starts a group; every create that arrives while that group's transaction
runs waits for the next one, which takes them all: the queue depth is counted once, each key is
charged (one compare-and-set each, as before: keys/balance.py), the accepted tasks are inserted
by one statement, and one commit makes them all durable. Only then is each create answered, with
its task or with the reason it was refused; if the transaction fails, every create of the group
gets the error, and none is answered with an id.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import sqlalchemy as sa

from darkroom.db import Database, tasks
from darkroom.keys import ApiKey, balance
from darkroom.tasks.model import NewTask, Task, TaskStatus

# How many creates one transaction takes at most: a group's statements hold the write lock,
# and a bounded group keeps that hold short.
MAX_GROUP = 256

_DEPTH = (
    sa.select(sa.func.count()).select_from(tasks).where(tasks.c.status == TaskStatus.IDLE.value)
)
_INSERT = tasks.insert().returning(*tasks.c, sort_by_parameter_order=True)


class QueueFull(Exception):
    """More tasks are waiting than the server accepts."""


class InsufficientFunds(Exception):
    """The key's balance would fall below its credit limit."""


@dataclass
class _Create:
    new: NewTask
    key: ApiKey
    max_queue: int
    answer: asyncio.Future[Task] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Admission:
    """Queues tasks in groups, one transaction each (see the module's docstring)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: list[_Create] = []
        self._committer: asyncio.Task[None] | None = None

    async def create(self, new: NewTask, key: ApiKey, *, max_queue: int) -> Task:
        """The queued task, durable when this returns; QueueFull or InsufficientFunds when it
        was refused (neither queued nor charged)."""
        create = _Create(new, key, max_queue)
        # Read even when nobody waits any more, so asyncio does not report it as lost.
        create.answer.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._waiting.append(create)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_groups())
        # Shielded: a client that goes away stops waiting; its group is committed all the same.
        return await asyncio.shield(create.answer)

    async def _commit_groups(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[:MAX_GROUP], self._waiting[MAX_GROUP:]
            try:
                outcomes = await self._commit(group)
            except BaseException as exc:  # the whole group failed: nobody gets an id
                for create in group:
                    _settle(create, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for create, outcome in zip(group, outcomes, strict=True):
                _settle(create, outcome)

    async def _commit(self, group: list[_Create]) -> list[Task | Exception]:
        async with self.db.write() as conn:
            # One call for the whole group: on SQLite, one hop to the writer thread.
            return await conn.run_sync(_admit, group)


def _admit(conn: sa.Connection, group: list[_Create]) -> list[Task | Exception]:
    """Charges and inserts the group's tasks in the caller's transaction; each create's
    outcome, in order: its task, or the reason it was refused."""
    outcomes: list[Task | Exception] = []
    accepted: list[int] = []
    depth = conn.execute(_DEPTH).scalar_one()
    for index, create in enumerate(group):
        if depth >= create.max_queue:
            outcomes.append(QueueFull(depth))
            continue
        charge = balance.charge_statement(create.key, create.new.cost)
        if charge is not None and conn.execute(charge).rowcount == 0:
            outcomes.append(InsufficientFunds())
            continue
        outcomes.append(InsufficientFunds())  # a placeholder: the task replaces it below
        accepted.append(index)
        depth += 1
    if accepted:
        rows = conn.execute(_INSERT, [_row(group[i].new) for i in accepted]).all()
        for index, row in zip(accepted, rows, strict=True):
            outcomes[index] = Task.from_row(row)
    return outcomes


def _row(new: NewTask) -> dict[str, object]:
    return {**new.row(), "status": TaskStatus.IDLE.value, "attempt": 0, "cancel_requested": False}


def _settle(create: _Create, outcome: Task | BaseException) -> None:
    if create.answer.done():
        return
    if isinstance(outcome, BaseException):
        create.answer.set_exception(outcome)
    else:
        create.answer.set_result(outcome)
