"""API throughput and latency: Darkroom's create and result routes against the real server,
side by side with a bare FastAPI endpoint on the same server stack, in one run.

    .venv/bin/python bench/api.py [--seconds 10] [--connections 32]

The load comes from wrk (Debian's `wrk`, installed by this script when missing), a C load
generator, so that the client is not the bottleneck as a Python one would be. Both servers run
as separate processes (uvicorn, one process each, logs at warning). Darkroom runs on embedded
defaults (SQLite in WAL mode, local disk) with no workers, so the figures are the API's own
cost: authentication, validation, one committed INSERT per create, one indexed read per result.
"""

# ruff: noqa: E402 - the import path is fixed before anything else is imported
from __future__ import annotations

import sys
from pathlib import Path

# The repository root replaces this script's folder on the import path, before any import:
# tests.support is imported from there.
sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.support.servers import Darkroom, free_port

ROOT = Path(__file__).resolve().parents[1]
BODY = {"model": "google-imagen-3", "ar": "16:9", "prompt": "a lighthouse at dusk, film grain"}


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
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError("the bare server exited")
        try:
            httpx.post(f"{url}/bare", json=BODY, timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError("the bare server did not start")


def _ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get install wrk) ...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def _wrk_script(folder: Path, method: str, headers: dict[str, str], body: dict | None) -> Path:
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{name}"] = {json.dumps(value)}' for name, value in headers.items()]
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    path = folder / f"{method}-{len(list(folder.iterdir()))}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _run_wrk(wrk: str, url: str, script: Path, args) -> dict[str, float]:
    out = subprocess.run(
        [wrk, "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s", script, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    percentile = dict(re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.MULTILINE))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": _millis(percentile["50"]),
        "p99": _millis(percentile["99"]),
    }


def _created_total(base_url: str) -> float:
    text = httpx.get(f"{base_url}/metrics").text
    pattern = r'^darkroom_tasks_created_total\{model="google-imagen-3"\} (\S+)$'
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _measure(wrk: str, darkroom: Darkroom, key: str, bare_url: str, folder: Path, args) -> list:
    auth = {"Authorization": key}
    task = httpx.post(f"{darkroom.base_url}/v1/media/create", json=BODY, headers=auth).json()
    if task["code"] != 0:
        raise RuntimeError(f"create failed: {task}")
    bare = _wrk_script(folder, "POST", {}, BODY)
    create = _wrk_script(folder, "POST", auth, BODY)
    result = _wrk_script(folder, "GET", auth, None)
    result_url = f"{darkroom.base_url}/v1/media/result?task_id={task['id']}"
    create_url = f"{darkroom.base_url}/v1/media/create"
    warm = argparse.Namespace(seconds=2, connections=args.connections)
    for url, script in ((f"{bare_url}/bare", bare), (create_url, create), (result_url, result)):
        _run_wrk(wrk, url, script, warm)  # connections, imports, SQLite's page cache

    rows = [("bare FastAPI POST", _run_wrk(wrk, f"{bare_url}/bare", bare, args))]
    before = _created_total(darkroom.base_url)
    rows.append(("POST /v1/media/create", _run_wrk(wrk, create_url, create, args)))
    created = _created_total(darkroom.base_url) - before
    rows.append(("GET /v1/media/result", _run_wrk(wrk, result_url, result, args)))
    # Every create wrk counted must be a task accepted (code 0), not an error answered fast.
    if created < rows[1][1]["requests"]:
        raise RuntimeError(f"only {created:.0f} of {rows[1][1]['requests']} creates were accepted")
    return rows


def _print(rows: list, args) -> None:
    print(
        f"\nDarkroom API bench: wrk, {args.connections} connections, {args.seconds} s per row\n"
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; SQLite (WAL), local disk, no workers; wrk on the same "
        "machine (1 thread)"
    )
    base = rows[0][1]["rps"]
    print(f"\n{'route':<24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'req/s vs bare':>16}")
    for name, row in rows:
        print(
            f"{name:<24}{row['rps']:>10.0f}{row['p50']:>10.2f}{row['p99']:>10.2f}"
            f"{row['rps'] / base:>15.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        _serve_bare(args.serve_bare)
        return
    wrk = _ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as name:
        folder = Path(name)
        (folder / "lua").mkdir()
        darkroom = Darkroom(folder, ROOT / "config" / "demo.toml", log_level="warning")
        darkroom.env["DARKROOM_MAX_QUEUE"] = str(10**9)
        bare, bare_url = _start_bare()
        try:
            darkroom.start_server("--workers", "0")
            key = darkroom.create_key("--name", "bench")
            rows = _measure(wrk, darkroom, key, bare_url, folder / "lua", args)
        finally:
            darkroom.stop()
            bare.terminate()
            bare.wait()
    _print(rows, args)


if __name__ == "__main__":
    main()
