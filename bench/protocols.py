"""What the limits on request heads cost: bench/api.py's bare FastAPI endpoint under wrk, served
by uvicorn's plain httptools protocol, by Darkroom's limited httptools protocol (what `darkroom
serve` runs) and by Darkroom's limited h11 protocol (its fallback), side by side in one run.

    .venv/bin/python bench/protocols.py [--seconds 10] [--connections 32] [--rounds 3]

Each server is its own uvicorn process with the same settings; the rounds take the protocols in
turn, so that a busy machine slows them alike, and the median round of each is shown. Beside
req/s, the server's CPU time per request (from /proc, so Linux only): on a shared machine it
varies far less than req/s, and it is what a protocol costs.
"""

# ruff: noqa: E402 - the import path is fixed before anything else is imported
from __future__ import annotations

import sys
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from typing import Any

import httpx
import uvicorn

from bench.api import BODY, _ensure_wrk, _run_wrk, _wrk_script, bare_app
from darkroom.api.protocols import h11_protocol, httptools_protocol
from darkroom.config import Settings
from tests.support.servers import free_port

PROTOCOLS = ["httptools", "httptools, limited", "h11, limited", "h11"]


def _http(name: str) -> dict[str, Any]:
    """uvicorn's options for the protocol, with `darkroom serve`'s limits where it has them."""
    settings = Settings()
    limits = (settings.max_header_bytes, settings.header_timeout_seconds)
    return {
        "httptools": {"http": "httptools"},
        "httptools, limited": {"http": httptools_protocol(*limits)},
        "h11, limited": {
            "http": h11_protocol(*limits),
            "h11_max_incomplete_event_size": settings.max_header_bytes,
        },
        "h11": {"http": "h11"},
    }[name]


def _serve(port: int, name: str) -> None:
    uvicorn.run(
        bare_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_keep_alive=75,
        **_http(name),
    )


def _start(name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), name],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/bare"
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"the {name} server exited")
        try:
            httpx.post(url, json=BODY, timeout=1)
            return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(f"the {name} server did not start")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _round(wrk: str, url: str, pid: int, script: Path, args: argparse.Namespace) -> dict:
    cpu = _cpu_seconds(pid)
    row = _run_wrk(wrk, url, script, args)
    return {**row, "cpu_us": (_cpu_seconds(pid) - cpu) / row["requests"] * 1e6}


def _measure(wrk: str, script: Path, args: argparse.Namespace) -> dict[str, list[dict]]:
    rounds: dict[str, list[dict]] = {name: [] for name in PROTOCOLS}
    servers = {name: _start(name) for name in PROTOCOLS}
    try:
        warm = argparse.Namespace(connections=args.connections, seconds=2)
        for _, url in servers.values():
            _run_wrk(wrk, url, script, warm)
        for _ in range(args.rounds):
            for name, (process, url) in servers.items():
                rounds[name].append(_round(wrk, url, process.pid, script, args))
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait()
    return rounds


def _print(rounds: dict[str, list[dict]], args: argparse.Namespace) -> None:
    print(
        f"\nHTTP protocols under the bare FastAPI POST: wrk, {args.connections} connections, "
        f"{args.seconds} s per round, median of {args.rounds} rounds\n"
    )
    print(
        f"{'protocol':<22}{'req/s':>8}{'vs':>7}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU us/req':>12}{'vs':>7}{'rounds req/s':>22}"
    )
    base = {what: _median(rounds["httptools"], what) for what in ("rps", "cpu_us")}
    for name, rows in rounds.items():
        rps, cpu = _median(rows, "rps"), _median(rows, "cpu_us")
        each = " ".join(f"{row['rps']:.0f}" for row in rows)
        print(
            f"{name:<22}{rps:>8.0f}{rps / base['rps']:>6.2f}x{_median(rows, 'p50'):>8.2f}"
            f"{_median(rows, 'p99'):>8.2f}{cpu:>12.0f}{cpu / base['cpu_us']:>6.2f}x{each:>22}"
        )


def _median(rows: list[dict], what: str) -> float:
    return statistics.median(row[what] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "PROTOCOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(int(args.serve[0]), args.serve[1])
        return
    wrk = _ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="darkroom-bench-") as name:
        script = _wrk_script(Path(name), "POST", {}, BODY)
        rounds = _measure(wrk, script, args)
    _print(rounds, args)


if __name__ == "__main__":
    main()
