"""Leader election on the database every node already shares: one row per elected service in
the `leaders` table names its leader and until when it leads.

A contender takes the row, or renews it, with one fenced UPDATE: "owner = me, expiry = now +
lease, where the owner is me or the lease has run out". The database serialises the contenders
(a row lock on PostgreSQL, the write lock on SQLite), so at most one UPDATE takes a free row and
the same statement works on both. A leader that stops gives the row up at once; one that dies
is replaced when its lease runs out (tests/integration/test_maintenance.py). Expiry uses each
node's wall clock, as task leases do.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from darkroom.db.database import Database
from darkroom.db.schema import leaders


class LeaderLease:
    """One node's claim to lead the service `name`, for `seconds` at a time."""

    def __init__(self, db: Database, name: str, owner: str, *, seconds: float) -> None:
        self.db = db
        self.name = name
        self.owner = owner
        self.seconds = seconds

    async def take(self) -> bool:
        """Takes the lead, or keeps it for another lease; True while this node leads."""
        now = time.time()
        free_or_mine = sa.or_(leaders.c.owner == self.owner, leaders.c.expires_at < now)
        async with self.db.write() as conn:
            taken = await conn.execute(
                leaders.update()
                .where(leaders.c.name == self.name, free_or_mine)
                .values(owner=self.owner, expires_at=now + self.seconds)
            )
        return taken.rowcount == 1

    async def give_up(self) -> None:
        """Lets another node lead at its next try, without waiting for the lease to run out."""
        async with self.db.write() as conn:
            await conn.execute(
                leaders.update()
                .where(leaders.c.name == self.name, leaders.c.owner == self.owner)
                .values(owner=None, expires_at=0.0)
            )
