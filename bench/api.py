"""API throughput and latency: Darkroom's create and result routes against the real server,
side by side with a bare FastAPI endpoint on the same server stack, in one run.

    .venv/bin/python bench/api.py [--requests 3000] [--concurrency 32]

Both servers run as separate processes (uvicorn, one process each, logs at warning); the load
generator is a third process with one HTTP/1.1 keep-alive connection per concurrent client.
Darkroom runs on embedded defaults (SQLite in WAL mode, local disk) with no workers, so the
figures are the API's own cost: authentication, validation, one committed INSERT per create,
one indexed read per result.
"""

# ruff: noqa: E402 - the import path is fixed before anything else is imported
from __future__ import annotations

import sys
from pathlib import Path

# The repository root replaces this script's folder on the import path, before any import:
# tests.support is imported from there, and bench/queue.py must not shadow the standard
# library's `queue`.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import tempfile
import time

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

ROOT = Path(__file__).resolve().parents[1]

from tests.support.servers import Darkroom, free_port

BODY = {"model": "google-imagen-3", "ar": "16:9", "prompt": "a lighthouse at dusk, film grain"}


async def _load(
    url: str, requests: int, concurrency: int, headers: dict[str, str], make_request
) -> tuple[float, list[float]]:
    """Sends `requests` requests from `concurrency` clients; returns (seconds, latencies)."""
    latencies: list[float] = []
    remaining = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as http:

        async def client() -> None:
            for index in remaining:
                started = time.perf_counter()
                response = await make_request(http, index)
                latencies.append(time.perf_counter() - started)
                answer = response.json()
                if answer.get("code") != 0:
                    raise RuntimeError(f"request failed: {answer}")

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return time.perf_counter() - started, latencies


def _row(name: str, seconds: float, latencies: list[float]) -> dict[str, float | str]:
    ordered = sorted(latencies)
    return {
        "name": name,
        "rps": len(latencies) / seconds,
        "p50": statistics.median(ordered) * 1000,
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def bare_app() -> FastAPI:
    """The baseline: a bare FastAPI endpoint on the same server stack (uvicorn, uvloop,
    httptools) that parses a JSON body and answers a task-shaped object, with no key check, no
    database and no storage. What Darkroom adds on top of this is what the bench shows."""
    app = FastAPI()

    @app.post("/bare")
    async def bare(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse(
            {
                "code": 0,
                "id": "6880f043e6060500018821de",
                "model": body.get("model"),
                "prompt": body.get("prompt"),
                "created_at": int(time.time()),
                "status": "idle",
                "url": None,
            }
        )

    return app


def _serve_bare(port: int) -> None:
    # The same uvicorn settings as `darkroom serve`, logs at warning like the Darkroom server.
    uvicorn.run(bare_app(), host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=75)


def _start_bare() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-bare", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_answering(url, process)
    return process, url


def _wait_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError("the bare server exited")
        try:
            httpx.post(f"{url}/bare", json=BODY, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("the bare server did not start")


async def _measure(darkroom: Darkroom, key: str, bare_url: str, args) -> list[dict]:
    auth = {"Authorization": key}
    n, c = args.requests, args.concurrency
    warm = max(200, n // 10)

    async def bare(http: httpx.AsyncClient, _index: int) -> httpx.Response:
        return await http.post("/bare", json=BODY)

    task_ids: list[str] = []

    async def create(http: httpx.AsyncClient, _index: int) -> httpx.Response:
        response = await http.post("/v1/media/create", json=BODY)
        task_ids.append(response.json()["id"])
        return response

    async def result(http: httpx.AsyncClient, index: int) -> httpx.Response:
        return await http.get("/v1/media/result", params={"task_id": task_ids[index]})

    rows = []
    # Warm both servers up (connections, imports, SQLite page cache) before measuring.
    await _load(bare_url, warm, c, {}, bare)
    await _load(darkroom.base_url, warm, c, auth, create)
    task_ids.clear()
    rows.append(_row("bare FastAPI POST", *await _load(bare_url, n, c, {}, bare)))
    rows.append(_row("POST /v1/media/create", *await _load(darkroom.base_url, n, c, auth, create)))
    rows.append(_row("GET /v1/media/result", *await _load(darkroom.base_url, n, c, auth, result)))
    return rows


def _print(rows: list[dict], args) -> None:
    print(f"\nDarkroom API bench: {args.requests} requests per row, {args.concurrency} clients")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        ", SQLite (WAL), local disk, no workers; load generator in the same machine"
    )
    base = rows[0]
    print(f"\n{'route':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'req/s vs bare':>16}")
    for row in rows:
        print(
            f"{row['name']:<24}{row['rps']:>10.0f}{row['p50']:>10.1f}{row['p99']:>10.1f}"
            f"{row['rps'] / base['rps']:>15.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        _serve_bare(args.serve_bare)
        return
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as folder:
        darkroom = Darkroom(
            Path(folder), ROOT / "config" / "demo.toml", log_level="warning", max_queue=10**9
        )
        bare, bare_url = _start_bare()
        try:
            darkroom.start_server("--workers", "0")
            key = darkroom.create_key("--name", "bench")
            rows = asyncio.run(_measure(darkroom, key, bare_url, args))
        finally:
            darkroom.stop()
            bare.terminate()
            bare.wait()
    _print(rows, args)


if __name__ == "__main__":
    main()
