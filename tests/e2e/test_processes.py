"""`darkroom serve --processes N`: N API processes on one port, each with a socket of its own,
over one SQLite file (each with its own writer, in line on the writers' file lock), the tasks
run by a `darkroom worker` beside them."""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.servers import Darkroom

CATALOG = """
[models."tiny-256"]
engine = "tiny"
native_size = 256
ratios = ["1:1"]
max_batch = 4
steps = 2
"""
TASKS = 200
CLIENTS = 50  # each on its own connection, so the kernel hands them to both processes


def installation(tmp_path: Path) -> Darkroom:
    catalog = tmp_path / "processes.toml"
    catalog.write_text(CATALOG)
    return Darkroom(tmp_path, catalog, poll_seconds=0.2)


async def create_from_many_clients(
    base_url: str, key: str, server_pid: int
) -> tuple[list[str], dict[int, int]]:
    """TASKS creates from CLIENTS clients at once; each client keeps its connection open until
    all are done, so who answered can be read from the server processes' sockets."""
    clients = [
        httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": key},
            timeout=60,
            limits=httpx.Limits(max_connections=1),
        )
        for _ in range(CLIENTS)
    ]

    async def one_client(client: httpx.AsyncClient, index: int) -> list[dict]:
        answers = []
        for n in range(TASKS // CLIENTS):
            prompt = f"client {index} task {n}"
            answer = await client.post(
                "/v1/media/create", json={"model": "tiny-256", "prompt": prompt}
            )
            answers.append(answer.json())
        return answers

    try:
        per_client = await asyncio.gather(*(one_client(c, i) for i, c in enumerate(clients)))
        answers = [answer for answers in per_client for answer in answers]
        assert [a["code"] for a in answers] == [0] * TASKS, [a for a in answers if a["code"]]
        return [a["id"] for a in answers], connections_by_process(base_url, server_pid)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))


def connections_by_process(base_url: str, server_pid: int) -> dict[int, int]:
    """The clients' open connections, counted by the server process that accepted them."""
    port = httpx.URL(base_url).port
    counts: dict[int, int] = {}
    for process in psutil.Process(server_pid).children():
        established = [
            c
            for c in process.net_connections(kind="tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
        ]
        if established:
            counts[process.pid] = len(established)
    return counts


def completed_task_ids(logs: str) -> list[str]:
    return [
        json.loads(line)["task_id"]
        for line in logs.splitlines()
        if '"task done"' in line and line.lstrip().startswith("{")
    ]


@pytest.mark.timeout(600)
def test_two_api_processes_on_sqlite_accept_every_create_and_a_worker_runs_each_once(tmp_path):
    darkroom = installation(tmp_path)
    try:
        server = darkroom.start_server("--processes", "2", "--workers", "0")
        key = darkroom.create_key()
        ids, connections = asyncio.run(create_from_many_clients(darkroom.base_url, key, server.pid))

        assert len(set(ids)) == TASKS
        # Both processes answered: the kernel spread the clients' connections between their
        # sockets (each has its own), a fair share each, all of them between the two. By the
        # hash of 50 connections' addresses, fewer than 10 on one is a 1-in-100,000 chance.
        assert len(connections) == 2, connections
        assert sum(connections.values()) == CLIENTS, connections
        assert min(connections.values()) >= CLIENTS // 5, connections
        with sqlite3.connect(tmp_path / "darkroom.db") as db:
            stored = {row[0] for row in db.execute("SELECT id FROM tasks")}
        assert stored == set(ids)

        darkroom.start_worker("--concurrency", "2")
        deadline = time.monotonic() + 420
        while len(set(completed_task_ids(darkroom.logs()))) < TASKS:
            assert time.monotonic() < deadline, "the worker did not finish every task"
            time.sleep(0.5)
        completions = collections.Counter(completed_task_ids(darkroom.logs()))
        assert set(completions) == set(ids)
        assert set(completions.values()) == {1}  # each task done once
        with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
            statuses = {
                client.get("/v1/media/result", params={"task_id": i}).json()["status"] for i in ids
            }
        assert statuses == {"done"}
    finally:
        darkroom.stop()


def test_more_than_one_process_with_workers_inside_is_refused(tmp_path):
    darkroom = installation(tmp_path)
    refused = darkroom.cli("serve", "--processes", "2", check=False)
    assert refused.returncode == 2
    assert "--workers 0" in refused.stderr and "darkroom worker" in refused.stderr


def api_processes(server_pid: int) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(server_pid).children()
        if "spawn_main" in " ".join(child.cmdline())
    ]


def wait_gone(processes: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert alive == [], f"still running: {alive}"


def test_the_api_processes_stop_with_their_parent_on_sigterm_and_when_it_is_killed(tmp_path):
    darkroom = installation(tmp_path)
    try:
        server = darkroom.start_server("--processes", "2", "--workers", "0")
        children = api_processes(server.pid)
        assert len(children) == 2
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0  # the children finished, the graceful way
        wait_gone(children)

        server = darkroom.start_server("--processes", "2", "--workers", "0")
        children = api_processes(server.pid)
        server.kill()  # passes nothing on: the orphans stop on their own
        server.wait()
        wait_gone(children)
        # And the port is free for the next server.
        darkroom.start_server("--processes", "2", "--workers", "0")
        assert httpx.get(f"{darkroom.base_url}/healthz").status_code == 200
    finally:
        darkroom.stop()
