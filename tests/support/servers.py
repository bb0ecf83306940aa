"""Real Darkroom processes for tests: `darkroom serve` and `darkroom worker` on real sockets,
each with its own data folder, database and settings."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Darkroom:
    """One Darkroom installation: a data folder, settings, and the processes that share them."""

    def __init__(self, data_dir: Path, config: Path | None = None, **settings: Any) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = {
            **os.environ,
            "DARKROOM_DATA_DIR": str(data_dir),
            "DARKROOM_PORT": str(self.port),
            "DARKROOM_HOST": "127.0.0.1",
            "DARKROOM_LOG_LEVEL": "info",
            "DARKROOM_POLL_SECONDS": "0.2",
        }
        if config is not None:
            self.env["DARKROOM_CONFIG"] = str(config)
        for name, value in settings.items():
            self.env[f"DARKROOM_{name.upper()}"] = str(value)
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "darkroom", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def create_key(self, *args: str) -> str:
        return self.cli("keys", "create", *args).stdout.strip()

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.data_dir / log_name, "ab")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            [sys.executable, "-m", "darkroom", *args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        self.processes.append(process)
        return process

    def start_server(self, *args: str, port: int | None = None) -> subprocess.Popen[bytes]:
        extra = ["--port", str(port)] if port else []
        process = self._spawn(["serve", *extra, *args], f"serve-{len(self.processes)}.log")
        wait_healthy(f"http://127.0.0.1:{port or self.port}", process)
        return process

    def start_worker(self, *args: str) -> subprocess.Popen[bytes]:
        return self._spawn(["worker", *args], f"worker-{len(self.processes)}.log")

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.data_dir.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was healthy")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{base_url} did not become healthy in {timeout}s")


@contextmanager
def running(
    data_dir: Path, config: Path | None = None, *serve_args: str, **settings: Any
) -> Iterator[Darkroom]:
    darkroom = Darkroom(data_dir, config, **settings)
    darkroom.start_server(*serve_args)
    try:
        yield darkroom
    finally:
        darkroom.stop()


def wait_for_status(
    client: httpx.Client,
    task_id: str,
    statuses: tuple[str, ...] = ("done", "failed"),
    timeout: float = 120,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = client.post("/v1/media/result", json={"task_id": task_id}).json()
        if task.get("status") in statuses:
            return task
        time.sleep(0.1)
    raise TimeoutError(f"task {task_id} not in {statuses} after {timeout}s: {task}")


# -- for the client's tests ------------------------------------------------------------------


def broken_model_catalog(folder: Path) -> Path:
    """A catalog whose google-imagen-3 cannot load: its tiny model folder holds a corrupt
    model_index.json, so every generation raises (with max_attempts=1 the task fails)."""
    model = folder / "broken-model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "model_index.json").write_text("this is not a model index")
    catalog = folder / "broken.toml"
    catalog.write_text(
        f'[models."google-imagen-3"]\nengine = "tiny"\nfolder = {json.dumps(str(model))}\n'
    )
    return catalog


class FlakyProxy:
    """A local HTTP server in front of a Darkroom. It answers requests with scripted failures,
    one per request in order, then passes requests through unchanged. A failure is "503" (HTTP
    503 with Retry-After: 0), "code 6" or "code 1" (the API's overloaded or internal-error
    answer), "drop" (the connection closed before any answer) or "pass" (passed through)."""

    def __init__(self, target: str, failures: list[str] | None = None) -> None:
        self.target = target
        self.failures = list(failures or [])
        self.seen: list[str] = []  # "METHOD /path" of every request, failed or passed through
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _proxy_handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FlakyProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_failure(self, request_line: str) -> str:
        with self._lock:
            self.seen.append(request_line)
            return self.failures.pop(0) if self.failures else "pass"


_CANNED = {
    "code 6": {
        "code": 6,
        "message": "Service on heavy load. Try again later. 2 tasks are waiting in the queue.",
    },
    "code 1": {"code": 1, "message": "Internal server error. Please try again later."},
}


def _proxy_handler(proxy: FlakyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            failure = proxy.next_failure(f"{self.command} {self.path}")
            if failure == "drop":
                self.close_connection = True  # no answer at all: the client sees a broken link
            elif failure == "503":
                self._send(503, b"Service Unavailable", "text/plain", {"Retry-After": "0"})
            elif failure in _CANNED:
                self._send(200, json.dumps(_CANNED[failure]).encode(), "application/json")
            else:
                self._pass_through(body)

        do_POST = do_PUT = do_DELETE = do_GET

        def _pass_through(self, body: bytes) -> None:
            headers = {
                k: v
                for k, v in self.headers.items()
                if k.lower() in ("authorization", "content-type")
            }
            answer = httpx.request(
                self.command, proxy.target + self.path, content=body, headers=headers, timeout=30
            )
            content_type = answer.headers.get("content-type", "application/octet-stream")
            self._send(answer.status_code, answer.content, content_type)

        def _send(
            self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

    return Handler
