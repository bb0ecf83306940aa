"""A create answered with code 0 is durable: the real server killed with SIGKILL in the middle of a
burst of creates from many clients, then restarted on the same data, has every task it answered
with an id before it died."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.support.backends import Backend
from tests.support.servers import Darkroom

CATALOG = """
[models."tiny-256"]
engine = "tiny"
native_size = 256
ratios = ["1:1"]
"""
CLIENTS = 40
KILL_AFTER = 150  # creates answered with code 0 before the kill


class Burst:
    """CLIENTS clients creating tasks as fast as they are answered, until the server is gone;
    `accepted` holds every id answered with code 0, `cut` counts requests the kill cut off."""

    def __init__(self, base_url: str, key: str) -> None:
        self.base_url = base_url
        self.key = key
        self.accepted: list[str] = []
        self.cut = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": self.key},
            timeout=30,
            limits=httpx.Limits(max_connections=CLIENTS),
        ) as http:
            await asyncio.gather(*(self._client(http, i) for i in range(CLIENTS)))

    async def _client(self, http: httpx.AsyncClient, index: int) -> None:
        for n in range(10**6):
            try:
                answer = await http.post(
                    "/v1/media/create", json={"model": "tiny-256", "prompt": f"{index} {n}"}
                )
            except httpx.TransportError:
                self.cut += 1  # the server died with this request in hand
                return
            body = answer.json()
            assert body["code"] == 0, body
            self.accepted.append(body["id"])


async def burst_then_kill(darkroom: Darkroom, server, key: str) -> Burst:
    burst = Burst(darkroom.base_url, key)
    running = asyncio.create_task(burst.run())
    while len(burst.accepted) < KILL_AFTER:
        assert not running.done(), running.exception()
        await asyncio.sleep(0.001)
    server.send_signal(signal.SIGKILL)
    await running
    return burst


@pytest.mark.timeout(300)
def test_every_create_answered_before_a_sigkill_is_there_after_a_restart(
    backend: Backend, tmp_path
):
    catalog = tmp_path / "durability.toml"
    catalog.write_text(CATALOG)
    darkroom = backend.installation(tmp_path, catalog)
    try:
        server = darkroom.start_server("--workers", "0")
        key = darkroom.create_key()
        burst = asyncio.run(burst_then_kill(darkroom, server, key))
        server.wait()
        assert server.returncode == -signal.SIGKILL
        # The kill came in the middle of the burst: requests were in flight when it died.
        assert burst.cut > 0
        accepted = set(burst.accepted)
        assert len(accepted) == len(burst.accepted) >= KILL_AFTER

        darkroom.start_server("--workers", "0")  # the same data folder and database
        with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
            found = {
                task_id: client.get("/v1/media/result", params={"task_id": task_id}).json()
                for task_id in accepted
            }
        missing = [t for t, answer in found.items() if answer["code"] != 0]
        assert not missing, f"{len(missing)} accepted tasks were lost: {found[missing[0]]}"
        assert {answer["id"] for answer in found.values()} == accepted
        if "DARKROOM_DATABASE_URL" not in darkroom.env:
            assert accepted <= stored_ids(tmp_path / "darkroom.db")
    finally:
        darkroom.stop()


def stored_ids(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        return {row[0] for row in db.execute("SELECT id FROM tasks")}
