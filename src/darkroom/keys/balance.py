"""A key's balance, moved inside the caller's transaction.

The task store charges a task when it queues it and gives the charge back when the task fails
or is canceled; both happen in the same transaction as the task's own change, so a crash can
never keep a task without its charge or refund it twice (spec: "Money").

The charge is one compare-and-set: `UPDATE ... SET balance = balance - price WHERE balance -
price >= -credit_limit`. The database evaluates the condition on the row as it is when the
update takes it (PostgreSQL re-checks it after waiting for a concurrent writer's lock; SQLite
has one writer at a time), so concurrent creates can never overdraw a key, which a read
followed by a write would (tests/e2e/test_money.py, the concurrent-charge test).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import sqlalchemy as sa

from darkroom.db import Connection, api_keys
from darkroom.keys.store import ApiKey


async def charge(conn: Connection, key: ApiKey, price: Decimal) -> bool:
    """Takes `price` from a metered key's balance; False (and nothing taken) when the balance
    would fall below `-credit_limit`. An unmetered key is never charged."""
    statement = charge_statement(key, price)
    return statement is None or (await conn.execute(statement)).rowcount > 0


def charge_statement(key: ApiKey, price: Decimal) -> sa.Update | None:
    """The compare-and-set that charges `price` (it changed no row: refused), or None for an
    unmetered key, which is never charged."""
    if key.balance is None:
        return None
    balance = api_keys.c.balance
    return (
        api_keys.update()
        .where(
            api_keys.c.id == key.id,
            balance.is_not(None),
            balance - price >= -api_keys.c.credit_limit,
        )
        .values(balance=balance - price)
    )


async def refund(conn: Connection, amounts: Mapping[int, Decimal]) -> None:
    """Gives back each key's amount (key id -> the costs of its tasks being refunded) to the
    keys that are metered."""
    for key_id, amount in amounts.items():
        if amount:
            await conn.execute(
                api_keys.update()
                .where(api_keys.c.id == key_id, api_keys.c.balance.is_not(None))
                .values(balance=api_keys.c.balance + amount)
            )
