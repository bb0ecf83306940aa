"""The request rate of rate-limited keys: a token bucket per key, in the database.

A bucket holds up to `burst` tokens and refills at `rate` per second; each request takes one.
Taking is one upsert that refills, checks and takes in the database (INSERT ... ON CONFLICT DO
UPDATE ... WHERE tokens >= 1), so every API node and process draws from the same bucket, and a
burst spread over many nodes is still one key's burst. Keys without a rate never touch it.

A refused request learns when the next token comes; until then this process refuses that key
without asking the database again, so a client hammering past its limit costs a dictionary
lookup per request, not a write.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from darkroom.db import Database, rate_buckets
from darkroom.keys.limits import Limits


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


class RateLimiter:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._empty_until: dict[int, float] = {}  # key id -> when its next token comes

    async def take(self, key_id: int, limits: Limits) -> None:
        """Takes a token from the key's bucket; RateLimited (with the seconds until the next
        token) when it is empty. Does nothing for a key without a rate."""
        rate = limits.rate
        if rate is None:
            return
        now = time.time()
        empty_until = self._empty_until.get(key_id)
        if empty_until is not None and now < empty_until:
            raise RateLimited(empty_until - now)
        async with self.db.write() as conn:
            take = _take(self.db.is_sqlite, key_id, rate, limits.burst, now)
            taken = (await conn.execute(take)).first()
            if taken is None:
                tokens = (
                    await conn.execute(
                        sa.select(_refilled(rate, limits.burst, now)).where(
                            rate_buckets.c.key_id == key_id
                        )
                    )
                ).scalar_one()
        if taken is not None:
            self._empty_until.pop(key_id, None)
            return
        wait = (1.0 - tokens) / rate
        self._empty_until[key_id] = now + wait
        raise RateLimited(wait)


def _refilled(rate: float, burst: float, now: float) -> sa.ColumnElement[float]:
    """The bucket's tokens as of now: what it held, plus the refill since, up to the burst."""
    filled = rate_buckets.c.tokens + (now - rate_buckets.c.updated_at) * rate
    return sa.case((filled > burst, burst), else_=filled)


def _take(on_sqlite: bool, key_id: int, rate: float, burst: float, now: float) -> sa.Insert:
    insert = (sqlite if on_sqlite else postgresql).insert(rate_buckets)
    refilled = _refilled(rate, burst, now)
    return (
        insert.values(key_id=key_id, tokens=burst - 1, updated_at=now)
        .on_conflict_do_update(
            index_elements=[rate_buckets.c.key_id],
            set_={"tokens": refilled - 1, "updated_at": now},
            where=refilled >= 1,
        )
        .returning(rate_buckets.c.tokens)
    )
