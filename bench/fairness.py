"""Fair share: how long a small key's tasks take with and without another key's flood ahead of
them, in one run on one server (SQLite, one worker, a tiny model).

    .venv/bin/python bench/fairness.py [--flood 2000] [--small 8]

Without fair share the small key's tasks would wait behind the whole flood (its completion time
growing with the flood's size); with it they take turns with the flood, so the p50 completion
time with the flood stays within a small factor of the time without it.
"""

# ruff: noqa: E402 - the import path is fixed before anything else is imported
from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import time

import httpx

from tests.support.catalogs import write_catalog
from tests.support.servers import Darkroom

BODY = {"model": "tiny", "prompt": "a lighthouse"}


async def create(http: httpx.AsyncClient, count: int) -> list[str]:
    answers = await asyncio.gather(
        *(http.post("/v1/media/create", json=BODY) for _ in range(count))
    )
    bodies = [answer.json() for answer in answers]
    if any(body["code"] != 0 for body in bodies):
        raise RuntimeError(f"a create was refused: {bodies[0]}")
    return [body["id"] for body in bodies]


async def completion_seconds(http: httpx.AsyncClient, count: int) -> list[float]:
    """Creates `count` tasks and waits for each; the seconds from create to done of each."""
    started = time.monotonic()
    pending = set(await create(http, count))
    finished: list[float] = []
    while pending:
        for task_id in list(pending):
            task = (await http.get("/v1/media/result", params={"task_id": task_id})).json()
            if task["status"] in ("done", "failed"):
                finished.append(time.monotonic() - started)
                pending.discard(task_id)
        await asyncio.sleep(0.1)
    return finished


def client(darkroom: Darkroom, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=darkroom.base_url,
        headers={"Authorization": key},
        limits=httpx.Limits(max_connections=32),
        timeout=300,
    )


async def measure(darkroom: Darkroom, args: argparse.Namespace) -> tuple[float, float, int]:
    small, flooder = darkroom.create_key("--name", "small"), darkroom.create_key("--name", "flood")
    async with client(darkroom, small) as mine, client(darkroom, flooder) as theirs:
        await completion_seconds(mine, 2)  # warm: the model is built and loaded
        alone = statistics.median(await completion_seconds(mine, args.small))
        await create(theirs, args.flood)
        flooded = statistics.median(await completion_seconds(mine, args.small))
        waiting = sum(
            1
            for page in [await theirs.get("/v1/media/tasks", params={"limit": 100})]
            for task in page.json()["data"]
            if task["status"] == "idle"
        )
    return alone, flooded, waiting


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=2000)
    parser.add_argument("--small", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="darkroom-fair-") as name:
        root = Path(name)
        catalog = write_catalog(
            root / "catalog.toml",
            {"tiny": {"engine": "tiny", "native_size": 64, "max_batch": 4, "steps": 1}},
        )
        darkroom = Darkroom(root, catalog, log_level="warning")
        darkroom.start_server("--workers", "1")
        try:
            alone, flooded, waiting = asyncio.run(measure(darkroom, args))
        finally:
            darkroom.stop()
    print(
        f"\nFair share bench: one worker, a tiny model (max_batch 4), SQLite\n"
        f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, "
        f"Python {platform.python_version()}\n"
        f"\nsmall key, {args.small} tasks: p50 completion {alone:.2f} s alone, {flooded:.2f} s "
        f"behind a flood of {args.flood} tasks of another key ({flooded / alone:.1f}x); "
        f"the flood's newest 100 tasks still waiting when the small key was done: {waiting}"
    )


if __name__ == "__main__":
    main()
