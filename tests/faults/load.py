"""What every fault test does around its fault: clients that create tasks without pause on a
real API node and keep every answer, and the checks that end each test: every accepted task
done or failed with a message, none lost, none done twice, none stuck."""

from __future__ import annotations

import collections
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import Darkroom, wait_for_status

CATALOG = """
[models."tiny-256"]
engine = "tiny"
native_size = 256
ratios = ["1:1"]
steps = 2
folder = {folder}
"""
DONE = '"event": "task done"'


def catalog(folder: Path, model_folder: Path) -> Path:
    """The tests' one model, its pipeline built once in `model_folder` for every test (it
    takes seconds) and outside any data folder the test fills or breaks."""
    path = folder / "faults.toml"
    path.write_text(CATALOG.format(folder=json.dumps(str(model_folder))))
    return path


class Load:
    """`clients` threads that each create a task, pause a little, and again, until stopped
    (about as fast as one worker of the tiny model on two cores finishes them).
    Answers are sorted: accepted (code 0: the task ids), refused (HTTP 200 with another code:
    the bodies), and anything else (another HTTP status or a broken connection)."""

    def __init__(self, base_url: str, key: str, clients: int = 2, pause: float = 0.3) -> None:
        self.base_url = base_url
        self.key = key
        self.pause = pause
        self.accepted: list[str] = []
        self.refused: list[dict[str, Any]] = []
        self.other: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,)) for i in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join()

    def _client(self, index: int) -> None:
        with httpx.Client(
            base_url=self.base_url, headers={"Authorization": self.key}, timeout=60
        ) as http:
            while not self._stopping.is_set():
                self._create(http, index)
                time.sleep(self.pause)

    def _create(self, http: httpx.Client, index: int) -> None:
        body = {"model": "tiny-256", "prompt": f"client {index}"}
        try:
            answer = http.post("/v1/media/create", json=body)
        except httpx.HTTPError as exc:
            with self._lock:
                self.other.append(repr(exc))
            return
        with self._lock:
            if answer.status_code != 200:
                self.other.append(f"HTTP {answer.status_code}: {answer.text[:300]}")
            elif answer.json().get("code") == 0:
                self.accepted.append(answer.json()["id"])
            else:
                self.refused.append(answer.json())

    def wait_accepted(self, count: int, timeout: float = 120) -> None:
        wait_until(lambda: len(self.accepted) >= count, timeout, f"{count} tasks accepted")

    def wait_refused(self, count: int, timeout: float = 120) -> None:
        wait_until(lambda: len(self.refused) >= count, timeout, f"{count} creates refused")


def wait_until(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout}s")
        time.sleep(0.05)


def create(client: httpx.Client, prompt: str = "x") -> str:
    answer = client.post("/v1/media/create", json={"model": "tiny-256", "prompt": prompt}).json()
    assert answer["code"] == 0, answer
    return answer["id"]


def finished(client: httpx.Client, task_ids: list[str], timeout: float = 90) -> dict[str, dict]:
    """Each task as it ended (done or failed); fails if one is still idle or processing."""
    ended: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    pending = list(task_ids)
    while pending:
        for task_id in pending:
            task = client.get("/v1/media/result", params={"task_id": task_id}).json()
            assert task["code"] == 0, task  # none lost
            if task["status"] in ("done", "failed"):
                ended[task_id] = task
        pending = [t for t in pending if t not in ended]
        assert not pending or time.monotonic() < deadline, f"stuck: {pending[:10]}"
        time.sleep(0.2)
    return ended


def assert_ended_well(client: httpx.Client, darkroom: Darkroom, task_ids: list[str]) -> None:
    """Every task done (its link downloads) or failed with a message, and done at most once."""
    assert len(set(task_ids)) == len(task_ids)
    tasks = finished(client, task_ids)
    for task in tasks.values():
        if task["status"] == "failed":
            assert task["message"], task
        else:
            assert httpx.get(task["url"], timeout=30).status_code == 200, task
    completions = collections.Counter(completed_task_ids(darkroom.logs()))
    assert {t: n for t, n in completions.items() if n != 1} == {}  # none done twice
    done = {t for t, task in tasks.items() if task["status"] == "done"}
    assert done <= set(completions)


def completed_task_ids(logs: str) -> list[str]:
    return [
        json.loads(line)["task_id"]
        for line in logs.splitlines()
        if '"task done"' in line and line.lstrip().startswith("{")
    ]


def wait_for_log(darkroom: Darkroom, text: str, count: int = 1, timeout: float = 60) -> None:
    wait_until(lambda: darkroom.logs().count(text) >= count, timeout, f"{text!r} x{count}")


def warm_up(darkroom: Darkroom, key: str) -> None:
    """One task done before the load: the worker has loaded its model."""
    with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}) as client:
        assert wait_for_status(client, create(client, "warm up"))["status"] == "done"
