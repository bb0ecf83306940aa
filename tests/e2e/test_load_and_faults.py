"""Concurrency and process faults on embedded parts: many clients at once, a worker killed
mid-task, a worker asked to stop mid-task."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom, running, wait_for_status

CLIENTS = 200


async def _create_and_poll(client: httpx.AsyncClient, index: int) -> dict:
    created = (
        await client.post(
            "/v1/media/create",
            json={"model": "tiny-512", "prompt": f"client {index}", "ar": "1:1"},
        )
    ).json()
    assert created["code"] == 0, created
    while True:
        task = (await client.get("/v1/media/result", params={"task_id": created["id"]})).json()
        assert task["code"] == 0, task
        if task["status"] in ("done", "failed"):
            return task
        await asyncio.sleep(0.25)


async def _run_clients(base_url: str, key: str) -> list[dict]:
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": key}, timeout=120, limits=limits
    ) as client:
        return await asyncio.gather(*(_create_and_poll(client, i) for i in range(CLIENTS)))


def test_200_concurrent_clients_get_every_task_done_once(tmp_path):
    with running(tmp_path, CONFIGS / "test.toml", "--workers", "2") as server:
        key = server.create_key()
        tasks = asyncio.run(_run_clients(server.base_url, key))
        assert [t["status"] for t in tasks] == ["done"] * CLIENTS
        assert len({t["id"] for t in tasks}) == CLIENTS
        assert len({t["url"] for t in tasks}) == CLIENTS
        logs = server.logs()
    assert "database is locked" not in logs
    completions = logs.count('"event": "task done"')
    assert completions == CLIENTS  # each task completed exactly once


def _slow_catalog(tmp_path) -> str:
    """A model slow enough on the CPU that a worker can be caught in the middle of a task."""
    path = tmp_path / "slow.toml"
    path.write_text('[models."slow"]\nengine = "tiny"\nnative_size = 512\nsteps = 150\n')
    return path


def _wait_processing(client: httpx.Client, task_id: str, timeout: float = 60) -> dict:
    return wait_for_status(client, task_id, ("processing",), timeout)


def test_a_worker_killed_mid_task_is_replaced_after_its_lease_expires(tmp_path):
    server = Darkroom(tmp_path, _slow_catalog(tmp_path), lease_seconds=3, max_attempts=3)
    server.start_server("--workers", "0")
    try:
        key = server.create_key()
        doomed = server.start_worker()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            task_id = client.post("/v1/media/create", json={"model": "slow", "prompt": "x"}).json()[
                "id"
            ]
            _wait_processing(client, task_id)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            killed_at = time.monotonic()
            server.start_worker()
            task = wait_for_status(client, task_id, timeout=180)
            assert task["status"] == "done"
            assert time.monotonic() - killed_at > 1  # it waited for the lease, not a shortcut
            assert httpx.get(task["url"]).status_code == 200
        assert '"requeued": 1' in server.logs()
    finally:
        server.stop()


def test_sigterm_lets_a_worker_finish_its_task_then_exit(tmp_path):
    server = Darkroom(tmp_path, _slow_catalog(tmp_path))
    server.start_server("--workers", "0")
    try:
        key = server.create_key()
        worker = server.start_worker()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            first = client.post("/v1/media/create", json={"model": "slow", "prompt": "1"}).json()
            _wait_processing(client, first["id"])
            worker.send_signal(signal.SIGTERM)
            second = client.post("/v1/media/create", json={"model": "slow", "prompt": "2"}).json()
            assert worker.wait(timeout=120) == 0
            assert (
                client.get("/v1/media/result", params={"task_id": first["id"]}).json()["status"]
                == "done"
            )
            # It claimed nothing after the signal.
            assert (
                client.get("/v1/media/result", params={"task_id": second["id"]}).json()["status"]
                == "idle"
            )
    finally:
        server.stop()
