"""API keys: created by an operator, shown once, stored as SHA-256 hashes.

Keys are 32 random bytes, so a fast hash is as safe as a slow one here (there is no dictionary
to try) and keeps authentication to one indexed lookup per request.

A key with a balance is metered: it may spend down to `-credit_limit` (keys/balance.py moves
the balance as tasks are created and refunded); a key without one (None) is unmetered. Only an
operator adds money (`topup`), and only to a metered key.

Each key has a webhook secret (`whsec_...`) that signs its tasks' deliveries, made with the key
and made anew by `rotate_webhook_secret`; it is not part of the `ApiKey` record, so that a
listing never shows it. A key may name a default `callback_url` for tasks that give none.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa

from darkroom.db import Database, api_keys, tasks
from darkroom.db.schema import Money
from darkroom.keys.cache import KeyCache
from darkroom.keys.limits import NO_LIMITS, Limits
from darkroom.money import LIMIT, ZERO
from darkroom.webhooks.signing import new_secret

KEY_PREFIX = "dk_"
# Built once: the statement every authenticated request runs (on a cache miss).
_LIVE_BY_HASH = sa.select(api_keys).where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)


@dataclass(frozen=True)
class ApiKey:
    id: int
    name: str
    prefix: str
    models: list[str] | None
    balance: Decimal | None
    """None: unmetered, never charged."""
    credit_limit: Decimal
    """How far below zero the balance may go."""
    created_at: float
    revoked_at: float | None
    admin: bool = False
    """An operator's key: it may also call /v1/admin/ (web/admin.py)."""
    weight: float = 1.0
    """Its share of the workers against other keys' (tasks/fair.py)."""
    priority: int = 0
    """Keys of a higher priority are served before any of a lower one."""
    limits: Limits = NO_LIMITS
    """Its own limits; those unset are the server's defaults (keys/limits.py)."""
    callback_url: str | None = None
    """Where its tasks' ends are posted when their create names no callback_url."""

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _row_to_key(row: sa.Row) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        models=row.models,
        balance=row.balance,
        credit_limit=row.credit_limit,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
        admin=bool(row.admin),
        weight=row.weight,
        priority=row.priority,
        limits=Limits(row.rate, row.max_waiting, row.max_running, row.daily_spend),
        callback_url=row.callback_url,
    )


class Unset:
    """A limit `set_limits` leaves as it is (None means "no limit" for models)."""


UNSET = Unset()


class TopUpRefused(Exception):
    """The top-up was not made; the message says why, in an operator's words."""


class KeyStore:
    def __init__(self, db: Database, *, cache_seconds: float = 0.0) -> None:
        self.db = db
        # Authenticated keys, for up to cache_seconds (keys/cache.py says what may be stale).
        self.cache = KeyCache(cache_seconds)

    async def create(
        self,
        name: str,
        *,
        models: list[str] | None = None,
        balance: Decimal | None = None,
        credit_limit: Decimal = ZERO,
        admin: bool = False,
        weight: float = 1.0,
        priority: int = 0,
        limits: Limits = NO_LIMITS,
        callback_url: str | None = None,
    ) -> tuple[str, ApiKey]:
        """Returns the raw key (the only time it exists outside the client) and its record;
        without a balance the key is unmetered."""
        raw = KEY_PREFIX + secrets.token_urlsafe(32)
        async with self.db.write() as conn:
            result = await conn.execute(
                api_keys.insert()
                .values(
                    name=name,
                    prefix=raw[:10],
                    key_hash=hash_key(raw),
                    models=models,
                    balance=balance,
                    credit_limit=credit_limit,
                    weight=weight,
                    priority=priority,
                    **_limit_columns(limits),
                    created_at=time.time(),
                    admin=admin,
                    callback_url=callback_url,
                    webhook_secret=new_secret(),
                )
                .returning(*api_keys.c)
            )
            return raw, _row_to_key(result.one())

    async def authenticate(self, raw: str, *, fresh: bool = False) -> ApiKey | None:
        """The live key for a raw key, or None when it is unknown or revoked: from the cache
        unless `fresh` asks for the row as it is now (the balance route does)."""
        key_hash = hash_key(raw)
        if not fresh and (cached := self.cache.get(key_hash)) is not None:
            return cached
        async with self.db.lookup() as conn:
            row = (await conn.execute(_LIVE_BY_HASH, {"key_hash": key_hash})).one_or_none()
        if row is None:
            return None
        key = _row_to_key(row)
        self.cache.put(key_hash, key)
        return key

    async def list(self) -> list[ApiKey]:
        async with self.db.read() as conn:
            rows = (await conn.execute(sa.select(api_keys).order_by(api_keys.c.id))).all()
        return [_row_to_key(row) for row in rows]

    async def revoke(self, ident: str) -> bool:
        """Revokes by numeric id, by prefix as listed, or by the raw key itself."""
        async with self.db.write() as conn:
            result = await conn.execute(
                api_keys.update().where(_live(ident)).values(revoked_at=time.time())
            )
        self.cache.forget()  # refused on this node from now on
        return result.rowcount > 0

    async def topup(self, ident: str, amount: Decimal) -> Decimal:
        """Adds a positive amount to a live metered key's balance (found as `revoke` finds
        it) in one statement, and returns the new balance; TopUpRefused says why not."""
        if amount <= 0:
            raise TopUpRefused(f"the amount must be positive, not {amount}")
        fits = api_keys.c.balance < LIMIT - amount
        async with self.db.write() as conn:
            balance = (
                await conn.execute(
                    api_keys.update()
                    .where(_live(ident), api_keys.c.balance.is_not(None), fits)
                    .values(balance=api_keys.c.balance + amount)
                    .returning(api_keys.c.balance)
                )
            ).scalar_one_or_none()
            if balance is not None:
                self.cache.forget()
                return balance
            found = (
                await conn.execute(sa.select(api_keys.c.balance).where(_live(ident)))
            ).one_or_none()
        if found is None:
            raise TopUpRefused(f"no live key matches {ident!r}")
        if found.balance is None:
            raise TopUpRefused(f"key {ident!r} is unmetered: it has no balance to top up")
        raise TopUpRefused(f"a balance cannot reach {LIMIT:,} or more")

    async def find(self, ident: str) -> ApiKey | None:
        """The live key an operator names (as `revoke` finds it), or None."""
        async with self.db.read() as conn:
            row = (await conn.execute(sa.select(api_keys).where(_live(ident)))).one_or_none()
        return _row_to_key(row) if row else None

    async def set_limits(
        self,
        ident: str,
        *,
        models: list[str] | None | Unset = UNSET,
        credit_limit: Decimal | Unset = UNSET,
        weight: float | Unset = UNSET,
        priority: int | Unset = UNSET,
        limits: Limits | Unset = UNSET,
        callback_url: str | None | Unset = UNSET,
    ) -> ApiKey | None:
        """Changes what is given (the models a live key may use, None: all; how far below
        zero its balance may go; its share; its limits, each None falling back to the server's
        default; its default webhook URL, None: none) and returns the key, or None when no live
        key matches."""
        values: dict[str, object] = {}
        if not isinstance(models, Unset):
            values["models"] = models
        if not isinstance(credit_limit, Unset):
            values["credit_limit"] = credit_limit
        if not isinstance(weight, Unset):
            values["weight"] = weight
        if not isinstance(priority, Unset):
            values["priority"] = priority
        if not isinstance(limits, Unset):
            values.update(_limit_columns(limits))
        if not isinstance(callback_url, Unset):
            values["callback_url"] = callback_url
        if not values:
            return await self.find(ident)
        statement = api_keys.update().where(_live(ident)).values(**values)
        async with self.db.write() as conn:
            row = (await conn.execute(statement.returning(*api_keys.c))).one_or_none()
        self.cache.forget()  # seen on this node at once
        return _row_to_key(row) if row else None

    async def spend_by_model(self) -> dict[int, dict[str, tuple[int, Decimal]]]:
        """For each key, per model: how many tasks it made and what they cost it (refunded
        costs left out), in one grouped query over the tasks table."""
        # Summed in the database in Money's own units (micro-units on SQLite), read as Money.
        charged = sa.case(
            (tasks.c.refunded_at.is_(None), tasks.c.cost), else_=sa.literal(ZERO, Money())
        )
        total = sa.func.sum(charged, type_=Money())
        query = sa.select(tasks.c.key_id, tasks.c.model, sa.func.count(), total).group_by(
            tasks.c.key_id, tasks.c.model
        )
        spend: dict[int, dict[str, tuple[int, Decimal]]] = {}
        async with self.db.read() as conn:
            for key_id, model, count, amount in (await conn.execute(query)).all():
                spend.setdefault(key_id, {})[model] = (count, amount or ZERO)
        return spend

    async def webhook_secret(self, key_id: int) -> str | None:
        """The secret that signs this key's webhooks (None: no such key)."""
        query = sa.select(api_keys.c.webhook_secret).where(api_keys.c.id == key_id)
        async with self.db.read() as conn:
            return (await conn.execute(query)).scalar_one_or_none()

    async def rotate_webhook_secret(self, ident: str) -> str | None:
        """A new webhook secret for the live key (found as `revoke` finds it), in use from
        now on; None when no live key matches."""
        secret = new_secret()
        async with self.db.write() as conn:
            result = await conn.execute(
                api_keys.update().where(_live(ident)).values(webhook_secret=secret)
            )
        return secret if result.rowcount > 0 else None

    async def count(self) -> int:
        async with self.db.read() as conn:
            return (
                await conn.execute(sa.select(sa.func.count()).select_from(api_keys))
            ).scalar_one()


def _limit_columns(limits: Limits) -> dict[str, object]:
    return {
        "rate": limits.rate,
        "max_waiting": limits.max_waiting,
        "max_running": limits.max_running,
        "daily_spend": limits.daily_spend,
    }


def _live(ident: str) -> sa.ColumnElement[bool]:
    """The live key an operator names: by numeric id, by prefix as listed, or by the raw key."""
    if ident.isdigit():
        match = api_keys.c.id == int(ident)
    elif ident.startswith(KEY_PREFIX) and len(ident) > 20:
        match = api_keys.c.key_hash == hash_key(ident)
    else:
        match = api_keys.c.prefix == ident
    return sa.and_(match, api_keys.c.revoked_at.is_(None))
