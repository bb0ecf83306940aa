"""Group commit for creates: every create waiting for the database joins one transaction.

A create is durable before it is answered (SQLite runs with synchronous=FULL, PostgreSQL
commits), so one transaction per create made creates wait in line for one fsync each. Here the
first create to arrive starts a group; every create that arrives while that group's transaction
runs waits for the next one, which takes them all: the queue depth is checked once, each key is
charged (one compare-and-set each, as before: keys/balance.py), the accepted tasks are inserted
by one statement, and one commit makes them all durable. Only then is each create answered, with
its task or with the reason it was refused; if the transaction fails, every create of the group
gets the error, and none is answered with an id.

A create may carry an idempotency key (the `Idempotency-Key` header): the first create with it
records (key, idempotency key) -> (body hash, task) in the same transaction as its task, and for
IDEMPOTENCY_SECONDS every later create with the same key and body answers that task, uncharged;
with another body it is refused. The record's primary key makes concurrent duplicates, on one
node or many, wait for the first to commit and then find its record.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from darkroom.db import Database, idempotency, tasks
from darkroom.db.inserts import insert_rows
from darkroom.keys import NO_LIMITS, ApiKey, Limits, balance
from darkroom.keys.limits import DAY_SECONDS
from darkroom.money import ZERO, json_number
from darkroom.tasks.model import NewTask, Task, TaskStatus

# How many creates one transaction takes at most: a group's statements hold the write lock,
# and a bounded group keeps that hold short.
MAX_GROUP = 256

_DEPTH = (
    sa.select(sa.func.count()).select_from(tasks).where(tasks.c.status == TaskStatus.IDLE.value)
)


IDEMPOTENCY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Idempotency:
    """A create's idempotency key and the hash of its body."""

    key: str
    body_hash: str


class IdempotencyMismatch(Exception):
    """The idempotency key was used with another body within IDEMPOTENCY_SECONDS."""


class KeyLimitReached(Exception):
    """The key is at one of its limits (keys/limits.py); `retry_after` says when to try again."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


# A key at its limit of waiting tasks may try again once one of them has started; how soon
# that is depends on the workers, so a client is told a short wait.
WAITING_RETRY_SECONDS = 5.0


class QueueFull(Exception):
    """More tasks are waiting than the server accepts."""


class InsufficientFunds(Exception):
    """The key's balance would fall below its credit limit."""


@dataclass
class _Create:
    new: NewTask
    key: ApiKey
    max_queue: int
    idempotency: Idempotency | None = None
    answer: asyncio.Future[Task] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Admission:
    """Queues tasks in groups, one transaction each (see the module's docstring)."""

    def __init__(self, db: Database, key_limits: Limits = NO_LIMITS) -> None:
        self.db = db
        self.key_limits = key_limits  # the server's defaults for keys that set none
        self._depth = _QueueDepth(db)
        self._waiting: list[_Create] = []
        self._committer: asyncio.Task[None] | None = None

    async def create(
        self,
        new: NewTask,
        key: ApiKey,
        *,
        max_queue: int,
        idempotency: Idempotency | None = None,
    ) -> Task:
        """The queued task, durable when this returns (or the task an earlier create with the
        same idempotency key and body queued); QueueFull, InsufficientFunds or
        IdempotencyMismatch when it was refused (neither queued nor charged)."""
        create = _Create(new, key, max_queue, idempotency)
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
        # Far below the cap, the queue is not counted in the transaction (a count costs what
        # the queue holds); near it, it is, so the cap holds exactly.
        estimate = await self._depth.estimate()
        roomy = estimate + len(group) < min(create.max_queue for create in group)
        async with self.db.write() as conn:
            # One call for the whole group: on SQLite, one hop to the writer thread.
            outcomes = await conn.run_sync(
                _admit, group, self.key_limits, estimate if roomy else None
            )
        self._depth.added(sum(isinstance(outcome, Task) for outcome in outcomes))
        return outcomes


class _QueueDepth:
    """An estimate of the idle tasks, for the queue cap: counted at most once per `max_age`
    seconds (outside any write), plus the tasks this process queued since. Claims only lower
    the truth, so on one node it never falls short of it; other nodes' creates of the last
    second it does not know, which the cap may let through."""

    def __init__(self, db: Database, max_age: float = 1.0) -> None:
        self.db = db
        self.max_age = max_age
        self._counted: int = 0
        self._added: int = 0
        self._at: float | None = None

    async def estimate(self) -> int:
        if self._at is None or time.monotonic() - self._at > self.max_age:
            at = time.monotonic()
            async with self.db.read() as conn:
                self._counted = (await conn.execute(_DEPTH)).scalar_one()
            self._added, self._at = 0, at
        return self._counted + self._added

    def added(self, count: int) -> None:
        self._added += count


def _admit(
    conn: sa.Connection, group: list[_Create], defaults: Limits, depth: int | None
) -> list[Task | Exception]:
    """Charges and inserts the group's tasks in the caller's transaction; each create's
    outcome, in order: its task, or the reason it was refused. `depth` is the queue's size
    when it is known to leave room for the whole group; None: count it here."""
    outcomes: list[Task | Exception] = []
    accepted: list[int] = []
    replayed: dict[int, str] = {}  # index -> the task an earlier create queued
    if depth is None:
        depth = conn.execute(_DEPTH).scalar_one()
    usage = _Usage(conn)
    for index, create in enumerate(group):
        outcomes.append(InsufficientFunds())  # a placeholder, replaced below
        if create.idempotency is not None:
            earlier = _claim_idempotency(conn, create)
            if isinstance(earlier, Exception):
                outcomes[index] = earlier
                continue
            if earlier is not None:
                replayed[index] = earlier
                continue
        limits = create.key.limits.over(defaults)
        if depth >= create.max_queue:
            outcomes[index] = QueueFull(depth)
        elif (over := usage.over(create, limits)) is not None:
            outcomes[index] = over
        elif not _charged(conn, create):
            outcomes[index] = InsufficientFunds()
        else:
            accepted.append(index)
            usage.add(create)
            depth += 1
            continue
        _release_idempotency(conn, create)  # refused: the key may be used again
    # The tasks as inserted: what the row holds is what was written, so nothing is read back.
    rows = [_row(group[index].new) for index in accepted]
    insert_rows(conn, tasks, rows)
    for index, row in zip(accepted, rows, strict=True):
        outcomes[index] = Task.from_row(row)
    for index, task_id in replayed.items():
        row = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).one()
        outcomes[index] = Task.from_row(row)
    return outcomes


class _Usage:
    """What each key of a group holds against its limits: waiting tasks and the day's spend,
    read once per key and group, and counted on as the group's creates are accepted."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.now = time.time()
        self._waiting: dict[int, int] = {}
        self._spent: dict[int, tuple[Decimal, float | None]] = {}  # (spent, oldest charge)

    def over(self, create: _Create, limits: Limits) -> KeyLimitReached | None:
        key_id, cost = create.key.id, create.new.cost
        if limits.max_waiting is not None and self._waiting_of(key_id) >= limits.max_waiting:
            return KeyLimitReached(
                f"This key has {limits.max_waiting} tasks waiting, its limit; try again "
                "once some have started.",
                WAITING_RETRY_SECONDS,
            )
        if limits.daily_spend is not None and cost > 0:
            spent, oldest = self._spent_of(key_id)
            if spent + cost > limits.daily_spend:
                wait = (oldest + DAY_SECONDS - self.now) if oldest is not None else DAY_SECONDS
                return KeyLimitReached(
                    f"This key may spend {json_number(limits.daily_spend)} a day and has spent "
                    f"{json_number(spent)} in the last 24 hours.",
                    max(wait, 1.0),
                )
        return None

    def add(self, create: _Create) -> None:
        key_id = create.key.id
        if key_id in self._waiting:
            self._waiting[key_id] += 1
        if key_id in self._spent:
            spent, oldest = self._spent[key_id]
            self._spent[key_id] = (spent + create.new.cost, oldest or self.now)

    def _waiting_of(self, key_id: int) -> int:
        if key_id not in self._waiting:
            query = sa.select(sa.func.count()).where(
                tasks.c.key_id == key_id, tasks.c.status == TaskStatus.IDLE.value
            )
            self._waiting[key_id] = self.conn.execute(query).scalar_one()
        return self._waiting[key_id]

    def _spent_of(self, key_id: int) -> tuple[Decimal, float | None]:
        if key_id not in self._spent:
            query = sa.select(sa.func.sum(tasks.c.cost), sa.func.min(tasks.c.enqueued_at)).where(
                tasks.c.key_id == key_id,
                tasks.c.enqueued_at > self.now - DAY_SECONDS,
                tasks.c.refunded_at.is_(None),
                tasks.c.cost > 0,
            )
            spent, oldest = self.conn.execute(query).one()
            self._spent[key_id] = (spent or ZERO, oldest)
        return self._spent[key_id]


def _charged(conn: sa.Connection, create: _Create) -> bool:
    charge = balance.charge_statement(create.key, create.new.cost)
    return charge is None or conn.execute(charge).rowcount > 0


def _claim_idempotency(conn: sa.Connection, create: _Create) -> str | Exception | None:
    """Records the create's idempotency key for its task; or, when a live record holds the key
    already, the id of that record's task (same body) or IdempotencyMismatch (another)."""
    assert create.idempotency is not None
    mine = sa.and_(
        idempotency.c.key_id == create.key.id,
        idempotency.c.idempotency_key == create.idempotency.key,
    )
    now = time.time()
    conn.execute(
        idempotency.delete().where(mine, idempotency.c.created_at <= now - IDEMPOTENCY_SECONDS)
    )
    insert = _insert_or_nothing(conn).values(
        key_id=create.key.id,
        idempotency_key=create.idempotency.key,
        body_hash=create.idempotency.body_hash,
        task_id=create.new.id,
        created_at=now,
    )
    if conn.execute(insert).rowcount > 0:
        return None
    # Another create holds it (on PostgreSQL, one that committed while this insert waited).
    held = conn.execute(sa.select(idempotency.c.body_hash, idempotency.c.task_id).where(mine)).one()
    if held.body_hash != create.idempotency.body_hash:
        return IdempotencyMismatch()
    return held.task_id


def _release_idempotency(conn: sa.Connection, create: _Create) -> None:
    if create.idempotency is None:
        return
    conn.execute(
        idempotency.delete().where(
            idempotency.c.key_id == create.key.id,
            idempotency.c.idempotency_key == create.idempotency.key,
            idempotency.c.task_id == create.new.id,
        )
    )


def _insert_or_nothing(conn: sa.Connection) -> sa.Insert:
    """INSERT ... ON CONFLICT DO NOTHING, in the connection's dialect."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(idempotency).on_conflict_do_nothing()


def _row(new: NewTask) -> dict[str, object]:
    return {**new.row(), "status": TaskStatus.IDLE.value, "attempt": 0, "cancel_requested": False}


def _settle(create: _Create, outcome: Task | BaseException) -> None:
    if create.answer.done():
        return
    if isinstance(outcome, BaseException):
        create.answer.set_exception(outcome)
    else:
        create.answer.set_result(outcome)
