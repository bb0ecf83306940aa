"""The key cache (keys/cache.py) on every backend: a key changed through this process is seen
at once, one changed elsewhere within the cache's lifetime, and what the cache holds never
decides a charge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from darkroom.db import Database
from darkroom.keys import KeyStore
from darkroom.tasks import InsufficientFunds, TaskStore
from tests.support.tasks import DATABASES, migrated_database, new_task

LONG = 3600.0  # a lifetime no test outlives: what is served then comes from the cache


@pytest.fixture(params=DATABASES)
async def db(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[Database]:
    database = await migrated_database(request, tmp_path)
    yield database
    await database.dispose()


async def test_a_key_revoked_through_this_store_is_refused_at_once(db):
    keys = KeyStore(db, cache_seconds=LONG)
    raw, key = await keys.create("cached")
    assert await keys.authenticate(raw) == key
    assert await keys.revoke(str(key.id))
    assert await keys.authenticate(raw) is None


async def test_a_key_revoked_elsewhere_is_served_until_its_entry_expires(db):
    here, elsewhere = KeyStore(db, cache_seconds=LONG), KeyStore(db)
    raw, key = await here.create("cached")
    assert await here.authenticate(raw) == key
    assert await elsewhere.revoke(raw)
    # The documented staleness: the cached record, until its lifetime ends ...
    assert await here.authenticate(raw) == key
    # ... and never for a fresh read (the balance route) ...
    assert await here.authenticate(raw, fresh=True) is None
    # ... nor past the lifetime.
    short = KeyStore(db, cache_seconds=0.2)
    raw, key = await short.create("short-lived")
    assert await short.authenticate(raw) == key
    assert await elsewhere.revoke(raw)
    await asyncio.sleep(0.3)
    assert await short.authenticate(raw) is None


async def test_an_unknown_key_is_not_cached(db):
    here, elsewhere = KeyStore(db, cache_seconds=LONG), KeyStore(db)
    raw, _ = await here.create("probe")
    await here.revoke(raw)
    assert await here.authenticate("dk_" + "x" * 43) is None
    raw, key = await elsewhere.create("created elsewhere")
    assert await here.authenticate(raw) == key  # at once, not after a cached refusal


async def test_a_cached_balance_never_pays_for_a_task(db):
    keys = KeyStore(db, cache_seconds=LONG)
    store = TaskStore(db)
    raw, _ = await keys.create("metered", balance=Decimal("1"))
    cached = await keys.authenticate(raw)
    assert cached is not None
    await store.create(new_task(cached, 1, cost=Decimal("1")), cached, max_queue=100)
    # The cached record still says 1; the database says 0, and it is the one asked.
    assert (await keys.authenticate(raw)).balance == Decimal("1")
    with pytest.raises(InsufficientFunds):
        await store.create(new_task(cached, 0, cost=Decimal("1")), cached, max_queue=100)
    assert (await keys.authenticate(raw, fresh=True)).balance == Decimal("0")
