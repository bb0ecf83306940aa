"""API throughput and latency: Darkroom's create and result routes against the real server, on
SQLite and on PostgreSQL, with one and more server processes, side by side with a bare FastAPI
endpoint on the same server stack, in one run.

    .venv/bin/python bench/api.py [--seconds 10] [--connections 32]
                                  [--databases sqlite,postgres] [--processes 1,2]

The load comes from wrk (bench/wrk.py). Every server is a separate process tree: the bare
endpoint (bench/bare.py) under `uvicorn --workers N`, Darkroom under `darkroom serve --workers 0
--processes N` (no engine workers, so the figures are the API's own cost: authentication,
validation, one committed INSERT per create, the reads of a result). SQLite is a fresh file in
WAL mode on local disk; PostgreSQL a private cluster started for the run the way the tests start
theirs (tests/support/services.py). Bare FastAPI with one process is the baseline of every ratio.
Every create wrk counted must be a task in the database: an error answered fast is no create.
Beside each row's req/s, the server's own CPU time per request (all its processes and threads),
which this shared machine's load moves far less than it moves req/s.
"""

# ruff: noqa: E402 - the import path is fixed before anything else is imported
from __future__ import annotations

import sys
from pathlib import Path

# The repository root replaces this script's folder on the import path, before any import:
# bench.* and tests.support are imported from there.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import contextlib
import os
import platform
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version

import asyncpg
import httpx
import psutil

from bench import wrk
from darkroom.api import serving
from darkroom.config import Settings
from tests.support.backends import Backend
from tests.support.servers import Darkroom, free_port
from tests.support.services import PostgresServer, postgres_server

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "google-imagen-3", "ar": "16:9", "prompt": "a lighthouse at dusk, film grain"}
DATABASES = ("sqlite", "postgres")
# What the bench sets on every Darkroom server, beside the data folder and the database.
SERVER_ENV = {"DARKROOM_LOG_LEVEL": "warning", "DARKROOM_MAX_QUEUE": str(10**9)}


@dataclass(frozen=True)
class Row:
    server: str
    processes: int
    route: str
    figures: wrk.Figures
    cpu_us: float
    """The server's CPU time per request (all its processes and threads), in microseconds."""


# -- the servers ------------------------------------------------------------------------------


@contextlib.contextmanager
def bare_server(processes: int) -> Iterator[tuple[str, int]]:
    """The bare endpoint under uvicorn with `processes` processes; yields its URL and pid."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.bare:app", "--port", str(port)]
        + ["--workers", str(processes), "--log-level", "warning", "--timeout-keep-alive", "75"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/bare"
    try:
        _wait_answering(url, process)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait()


def _wait_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError("the bare server exited")
        try:
            httpx.post(url, json=BODY, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("the bare server did not start")


@contextlib.contextmanager
def darkroom_server(
    folder: Path, database: str, postgres: PostgresServer | None, processes: int
) -> Iterator[Darkroom]:
    """`darkroom serve --workers 0 --processes N` on a fresh database of its own."""
    darkroom = Backend(database).installation(folder, ROOT / "config" / "demo.toml")
    darkroom.env.pop("DARKROOM_DATABASE_URL", None)  # SQLite: the data folder's own file
    if database == "postgres":
        darkroom.env["DARKROOM_DATABASE_URL"] = postgres.new_database("bench")
    darkroom.env.update(SERVER_ENV)
    try:
        darkroom.start_server("--workers", "0", "--processes", str(processes))
        yield darkroom
    finally:
        darkroom.stop()


def tasks_stored(darkroom: Darkroom) -> int:
    """Rows in the task table (each process of a server counts its own creates on /metrics,
    so the database is the one place that sees them all)."""
    url = darkroom.env.get("DARKROOM_DATABASE_URL")
    if url is None:
        with contextlib.closing(sqlite3.connect(darkroom.data_dir / "darkroom.db")) as db:
            return db.execute("SELECT count(*) FROM tasks").fetchone()[0]

    async def count() -> int:
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval("SELECT count(*) FROM tasks")
        finally:
            await conn.close()

    return asyncio.run(count())


# -- the measurements -------------------------------------------------------------------------


def measure_bare(tool: str, processes: int, lua: Path, args: argparse.Namespace) -> Row:
    script = wrk.script(lua, "POST", {}, BODY)
    with bare_server(processes) as (url, pid):
        wrk.run(tool, url, script, 2, args.connections)  # connections, imports
        figures, cpu = _run(tool, url, script, args, pid)
        return Row("bare FastAPI", processes, "POST /bare", figures, cpu)


def measure_darkroom(
    tool: str, darkroom: Darkroom, label: str, processes: int, lua: Path, args: argparse.Namespace
) -> list[Row]:
    key = darkroom.create_key("--name", "bench")
    auth = {"Authorization": key}
    task = httpx.post(f"{darkroom.base_url}/v1/media/create", json=BODY, headers=auth).json()
    if task["code"] != 0:
        raise RuntimeError(f"create failed: {task}")
    create_url = f"{darkroom.base_url}/v1/media/create"
    result_url = f"{darkroom.base_url}/v1/media/result?task_id={task['id']}"
    create = wrk.script(lua, "POST", auth, BODY)
    result = wrk.script(lua, "GET", auth, None)
    for url, script in ((create_url, create), (result_url, result)):
        wrk.run(tool, url, script, 2, args.connections)  # connections, imports, page caches

    pid = darkroom.processes[0].pid
    before = tasks_stored(darkroom)
    created, create_cpu = _run(tool, create_url, create, args, pid)
    accepted = tasks_stored(darkroom) - before
    # Every create wrk counted must be a task accepted (code 0), not an error answered fast.
    if accepted < created.requests:
        raise RuntimeError(f"only {accepted} of {created.requests} creates were accepted")
    results, result_cpu = _run(tool, result_url, result, args, pid)
    return [
        Row(label, processes, "POST /v1/media/create", created, create_cpu),
        Row(label, processes, "GET /v1/media/result", results, result_cpu),
    ]


def _run(
    tool: str, url: str, script: Path, args: argparse.Namespace, pid: int
) -> tuple[wrk.Figures, float]:
    """wrk's figures, and the CPU time per request of the server whose root process is `pid`."""
    server = _process_tree(pid)
    before = _cpu_seconds(server)
    figures = wrk.run(tool, url, script, args.seconds, args.connections)
    used = _cpu_seconds(server) - before
    return figures, 1e6 * used / max(1, figures.requests)


def _process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    """User and system time of the processes (their threads included)."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def measure_all(args: argparse.Namespace) -> tuple[list[Row], str | None]:
    tool = wrk.ensure_wrk()
    rows: list[Row] = []
    pg_version = None
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="darkroom-bench-")))
        lua = folder / "lua"
        lua.mkdir()
        # Bare FastAPI at 1 process is every ratio's base, whatever counts were asked for.
        rows += [measure_bare(tool, n, lua, args) for n in sorted({1, *args.processes})]
        postgres = None
        if "postgres" in args.databases:
            postgres = stack.enter_context(postgres_server())
            pg_version = asyncio.run(_pg_version(postgres))
        for database in args.databases:
            label = {"sqlite": "Darkroom SQLite", "postgres": "Darkroom PostgreSQL"}[database]
            for n in args.processes:
                data = folder / f"{database}-{n}"
                data.mkdir()
                with darkroom_server(data, database, postgres, n) as darkroom:
                    rows += measure_darkroom(tool, darkroom, label, n, lua, args)
    return rows, pg_version


async def _pg_version(postgres: PostgresServer) -> str:
    conn = await asyncpg.connect(postgres.url("postgres"))
    try:
        return await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()


# -- the report -------------------------------------------------------------------------------


def conditions(args: argparse.Namespace, pg_version: str | None) -> str:
    settings = Settings()  # the bench's environment, which the servers inherit
    protocol = serving.http_protocol(settings)
    parser = next(c.__name__ for c in protocol.__mro__ if c.__module__.startswith("uvicorn."))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    lines = [
        f"wrk (1 thread) on the same machine, {args.connections} connections, "
        f"{args.seconds} s per row after 2 s of warm-up",
        f"machine: {platform.machine()}, {_cpu_model()}, {os.cpu_count()} cores; load average "
        f"at the end (1, 5, 15 min): {load}",
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')}, FastAPI "
        f"{version('fastapi')}, SQLAlchemy {version('sqlalchemy')}, asyncpg {version('asyncpg')}",
        f"bare FastAPI: uvicorn's defaults (loop {_default_loop()}, httptools parser)",
        f"Darkroom: `darkroom serve --workers 0 --processes N`, HTTP protocol {parser},\n  "
        f"DARKROOM_KEY_CACHE_SECONDS={settings.key_cache_seconds:g}, "
        f"DARKROOM_MAX_QUEUE={SERVER_ENV['DARKROOM_MAX_QUEUE']}, DARKROOM_LOG_LEVEL=warning "
        f"(no access log),\n  pool {settings.db_pool_size}+{settings.db_max_overflow} connections "
        "per process (PostgreSQL)",
        f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=FULL), local disk",
    ]
    if pg_version:
        lines.append(
            f"PostgreSQL {pg_version} (private cluster as the tests start it: fsync off, "
            "synchronous_commit off, loopback TCP)"
        )
    return "\n".join(lines)


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def _default_loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def report(rows: list[Row], args: argparse.Namespace, pg_version: str | None) -> str:
    bare = next(r for r in rows if r.server == "bare FastAPI" and r.processes == 1)
    base, base_cpu = bare.figures.rps, bare.cpu_us
    lines = [
        "Darkroom API bench",
        conditions(args, pg_version),
        "",
        f"{'server':<21}{'processes':>9}  {'route':<23}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'vs bare 1 process':>19}{'CPU us/req':>12}{'vs bare':>9}",
    ]
    for row in rows:
        f = row.figures
        lines.append(
            f"{row.server:<21}{row.processes:>9}  {row.route:<23}{f.rps:>9.0f}{f.p50:>9.2f}"
            f"{f.p99:>9.2f}{f.rps / base:>18.2f}x{row.cpu_us:>12.0f}{row.cpu_us / base_cpu:>8.2f}x"
        )
    lines += [
        "",
        "CPU us/req: the server's own CPU time (every process and thread, user and system) per",
        "request; wrk's, the database server's and the rest of the machine's are not in it, so it",
        "varies far less with the machine's load than req/s does.",
    ]
    return "\n".join(lines)


def _names(text: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if allowed is not None and (unknown := set(names) - set(allowed)):
        raise argparse.ArgumentTypeError(f"unknown {sorted(unknown)}; choose from {allowed}")
    return names


def _counts(text: str) -> list[int]:
    counts = [int(n) for n in _names(text)]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("process counts are whole numbers from 1")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per row (default 10)")
    parser.add_argument("--connections", type=int, default=32, help="wrk's (default 32)")
    parser.add_argument(
        "--databases",
        type=lambda text: _names(text, DATABASES),
        default=list(DATABASES),
        help="comma-separated, of sqlite,postgres (default both)",
    )
    parser.add_argument(
        "--processes",
        type=_counts,
        default=[1, 2],
        help="comma-separated server process counts (default 1,2)",
    )
    args = parser.parse_args()
    rows, pg_version = measure_all(args)
    print(report(rows, args, pg_version))


if __name__ == "__main__":
    main()
