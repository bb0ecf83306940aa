"""A key's balance, moved inside the caller's transaction.

The task store charges a task when it queues it and gives the charge back when the task fails
or is canceled; both happen in the same transaction as the task's own change, so a crash can
never keep a task without its charge or refund it twice (spec: "Money"). Each statement is a
compare-and-set in the database, so concurrent creates never overdraw a key.

Today a balance is a count of credits, one per task (None: unmetered).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from darkroom.db import Connection, api_keys
from darkroom.keys.store import ApiKey


async def charge(conn: Connection, key: ApiKey) -> bool:
    """Takes one credit from a metered key; False when it has none left. An unmetered key
    is never charged."""
    if key.credits is None:
        return True
    charged = await conn.execute(
        api_keys.update()
        .where(api_keys.c.id == key.id, api_keys.c.credits > 0)
        .values(credits=api_keys.c.credits - 1)
    )
    return charged.rowcount > 0


async def refund(conn: Connection, key_ids: Iterable[int]) -> None:
    """Gives one credit back per failed task (a key id per task) to keys that are metered."""
    for key_id, count in Counter(key_ids).items():
        await conn.execute(
            api_keys.update()
            .where(api_keys.c.id == key_id, api_keys.c.credits.is_not(None))
            .values(credits=api_keys.c.credits + count)
        )
