"""Real Darkroom processes for tests: `darkroom serve` and `darkroom worker` on real sockets,
each with its own data folder, database and settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
