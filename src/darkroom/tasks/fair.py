"""Fair share: which waiting tasks a claim takes when many keys wait.

Arrival order let one key that queued 10,000 tasks keep every other key waiting behind them.
Here keys take turns, by start-time fair queuing (the scheduler of Linux's CFS and of weighted
fair queuing in network routers, on tasks instead of packets):
- every key has a virtual time; a claim serves the key of the highest `priority` that has a
  task ready, and among those the one whose virtual time is smallest (then the oldest key);
- serving a key advances its virtual time by (tasks claimed) / `weight`, from no less than the
  virtual time of the key served last: a key that waited with nothing queued banks no credit,
  and a new key starts level with the others, so a key with 10 tasks and one with 10,000 share
  the workers equally (or as their weights say) until the small one runs out;
- the batch is filled from the chosen task's batch key across keys in turn: each key's first
  waiting task of that batch key, then each key's second, and so on, so one batch may mix keys.
The claim itself stays one UPDATE of the chosen rows under the lease (tasks/store.py); choosing
the key and advancing its virtual time are statements of the same transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import sqlalchemy as sa

from darkroom.db import Connection, api_keys, tasks
from darkroom.tasks.model import Task, TaskStatus

# Keys tried for a leader per claim: on PostgreSQL the first key's ready tasks may all be locked
# by a concurrent claim (SKIP LOCKED passes over them), and the next key then serves.
KEYS_TRIED = 8


def ready(now: float, models: Sequence[str] | None) -> sa.ColumnElement[bool]:
    """Waiting, its retry delay over, and of the given models."""
    condition = sa.and_(tasks.c.status == TaskStatus.IDLE.value, tasks.c.run_after <= now)
    if models is not None:
        condition = sa.and_(condition, tasks.c.model.in_(models))
    return condition


def room(default_max_running: int | None) -> sa.ColumnElement[int]:
    """How many more tasks each key may run (its max_running, or the server's default, less
    those it runs now); NULL: no limit."""
    cap: sa.ColumnElement[int] = api_keys.c.max_running
    if default_max_running is not None:
        cap = sa.func.coalesce(cap, default_max_running)
    others = tasks.alias("running")  # not the outer query's tasks, which it may also read
    running = (
        sa.select(sa.func.count())
        .select_from(others)
        .where(others.c.key_id == api_keys.c.id, others.c.status == TaskStatus.PROCESSING.value)
        .correlate(api_keys)
        .scalar_subquery()
    )
    return cap - running


def keys_in_turn(
    now: float, models: Sequence[str] | None, default_max_running: int | None = None
) -> sa.Select:
    """The keys with a ready task and room to run it, in the order they are to be served."""
    waiting = sa.exists().where(tasks.c.key_id == api_keys.c.id, ready(now, models))
    left = room(default_max_running)
    return (
        sa.select(api_keys.c.id)
        .where(waiting, sa.or_(left.is_(None), left > 0))
        .order_by(api_keys.c.priority.desc(), api_keys.c.vtime, api_keys.c.id)
        .limit(KEYS_TRIED)
    )


def oldest_batch_key(
    key_id: int, now: float, models: Sequence[str] | None, *, lock: bool
) -> sa.Select:
    """The batch key of the key's oldest ready task (on PostgreSQL, one no claim holds)."""
    query = (
        sa.select(tasks.c.batch_key)
        .where(tasks.c.key_id == key_id, ready(now, models))
        .order_by(tasks.c.enqueued_at)
        .limit(1)
    )
    return query.with_for_update(skip_locked=True) if lock else query


def in_turn(
    batch_key: str, now: float, limit: int, default_max_running: int | None = None
) -> sa.Select:
    """Up to `limit` ids of ready tasks of the batch key, the keys taking turns: every key's
    first such task (in the keys' serving order), then every key's second, and so on; no
    more of a key's tasks than it has room to run."""
    turn = (
        sa.func.row_number()
        .over(partition_by=tasks.c.key_id, order_by=tasks.c.enqueued_at)
        .label("turn")
    )
    ranked = (
        sa.select(
            tasks.c.id,
            tasks.c.enqueued_at,
            turn,
            api_keys.c.priority,
            api_keys.c.vtime,
            room(default_max_running).label("room"),
        )
        .join(api_keys, api_keys.c.id == tasks.c.key_id)
        .where(tasks.c.batch_key == batch_key, ready(now, None))
        .subquery("ranked")
    )
    return (
        sa.select(ranked.c.id)
        .where(sa.or_(ranked.c.room.is_(None), ranked.c.turn <= ranked.c.room))
        .order_by(
            ranked.c.turn,
            ranked.c.priority.desc(),
            ranked.c.vtime,
            ranked.c.enqueued_at,
        )
        .limit(limit)
    )


async def advance(conn: Connection, claimed: Sequence[Task], now: float) -> None:
    """Moves each served key's virtual time on by its tasks claimed / its weight, starting from
    no less than the system's virtual time: the start of the turn served last (kept as that
    key's `vstart`). A key that had nothing waiting (or is new) so comes back level with the
    others, not ahead by the turns it did not need."""
    if not claimed:
        return
    last = sa.select(api_keys.c.vstart).order_by(api_keys.c.served_at.desc().nulls_last())
    floor = (await conn.execute(last.limit(1))).scalar_one_or_none() or 0.0
    start = sa.case((api_keys.c.vtime < floor, floor), else_=api_keys.c.vtime)
    for key_id, count in Counter(task.key_id for task in claimed).items():
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id)
            .values(vtime=start + count / api_keys.c.weight, vstart=start, served_at=now)
        )
