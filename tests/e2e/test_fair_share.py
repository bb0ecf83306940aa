"""The flood, over real servers on SQLite and PostgreSQL: one key queues a thousand tasks, then
another key queues eight; the small key's tasks are all done while the large key still has
almost all of its own waiting, because the workers serve the keys in turn (tasks/fair.py), not
in arrival order. Asserted as an order bound (how many of the flood's tasks ran first), never as
a time."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import backend_named
from tests.support.backends import BACKENDS
from tests.support.catalogs import write_catalog
from tests.support.media import client_for
from tests.support.servers import Darkroom

FLOOD, SMALL, MAX_BATCH = 1000, 8, 4
BODY = {"model": "tiny", "prompt": "a lighthouse"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Darkroom]:
    root = tmp_path_factory.mktemp(f"fair-{request.param}")
    catalog = write_catalog(
        root / "catalog.toml",
        {"tiny": {"engine": "tiny", "native_size": 64, "max_batch": MAX_BATCH, "steps": 1}},
    )
    # No workers in the server: a worker process starts once both keys' tasks are queued.
    with backend_named(request, request.param).running(root, catalog, "--workers", "0") as darkroom:
        yield darkroom


async def create_many(server: Darkroom, key: str, count: int) -> list[str]:
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": key}, limits=limits, timeout=120
    ) as http:
        answers = await asyncio.gather(
            *(http.post("/v1/media/create", json=BODY) for _ in range(count))
        )
    bodies = [answer.json() for answer in answers]
    assert [b["code"] for b in bodies] == [0] * count
    return [b["id"] for b in bodies]


def statuses(client: httpx.Client) -> Counter[str]:
    """How many of the key's tasks stand in each status, from its listing."""
    counts: Counter[str] = Counter()
    cursor = None
    while True:
        page = client.get(
            "/v1/media/tasks", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
        ).json()
        counts.update(task["status"] for task in page["data"])
        cursor = page["next_cursor"]
        if cursor is None:
            return counts


def test_a_small_key_is_done_while_a_flood_still_waits(server):
    flooder, small = server.create_key("--name", "flood"), server.create_key("--name", "small")
    asyncio.run(create_many(server, flooder, FLOOD))
    asyncio.run(create_many(server, small, SMALL))
    worker = server.start_worker()
    with client_for(server, small) as mine, client_for(server, flooder) as theirs:
        deadline = time.monotonic() + 600
        while statuses(mine)["done"] < SMALL:
            assert time.monotonic() < deadline, statuses(mine)
            time.sleep(0.1)
        # Paused while the flood's thousand tasks are listed, so the count is the one at the
        # moment the small key was done (give or take the batch in hand).
        worker.send_signal(signal.SIGSTOP)
        try:
            flood = statuses(theirs)
        finally:
            worker.send_signal(signal.SIGCONT)
    # In turn, the flood ran about as many tasks as the small key (plus the batch in hand when
    # the listing was read), though all of its tasks came first; the rest still wait.
    assert ran(flood) <= SMALL + 2 * MAX_BATCH, flood
    assert flood["idle"] >= FLOOD - SMALL - 2 * MAX_BATCH


def ran(counts: Counter[str]) -> int:
    return counts["done"] + counts["processing"] + counts["failed"]
