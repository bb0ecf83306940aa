"""wrk, the C load generator the API bench drives (so that the client is not the bottleneck as a
Python one would be): installed when missing, one run, its figures parsed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

# A slow answer is a latency to report, not a failed request (wrk's default is 2 s).
TIMEOUT = "30s"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


@dataclass(frozen=True)
class Figures:
    rps: float
    requests: int  # answered in the run (those still in flight at its end are not counted)
    p50: float  # milliseconds
    p99: float


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get install wrk) ...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, capture_output=True)
    return shutil.which("wrk") or "wrk"


def script(folder: Path, method: str, headers: dict[str, str], body: dict | None) -> Path:
    """A wrk Lua script sending one request over and over."""
    lines = [f'wrk.method = "{method}"']
    lines += [f'wrk.headers["{name}"] = {json.dumps(value)}' for name, value in headers.items()]
    if body is not None:
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(f"wrk.body = {json.dumps(json.dumps(body))}")
    path = folder / f"{method}-{len(list(folder.iterdir()))}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(wrk: str, url: str, lua: Path, seconds: int, connections: int) -> Figures:
    """One run of wrk (one thread); any non-2xx answer, socket error or answer slower than
    TIMEOUT fails the bench."""
    out = subprocess.run(
        [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={TIMEOUT}", "--latency"]
        + ["-s", str(lua), url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw failed requests on {url}:\n{out}")
    percentile = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", out, re.MULTILINE))
    if "99" not in percentile:
        raise RuntimeError(f"wrk's output has no latency distribution:\n{out}")
    return Figures(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        p50=_millis(percentile["50"]),
        p99=_millis(percentile["99"]),
    )


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]
