"""A scripted server speaking the media API of ../../shared/spec/media-api.md (the hosted
service's create/result protocol): every task reports `processing` with a `progress` for a
few polls, then `done` with a link to a PNG on the same server. For what a real Darkroom does
not show at will (progress, a slow task); the relay engine is otherwise tested against a real
second Darkroom. Each create request's body is kept (`created`), reference images included.

A hostile upstream is scripted with `result_url` (the link a done task names), `result_file`
(the bytes behind this server's own links), `next_id` (the id the next create answers),
`repeated_id` (the id every create answers, as a broken upstream might) and `result_answer`
(called with a task id before each result: an Answer replaces the usual one).

Models named in `kinds` make video (a link to a real MP4) or audio (the audio shape: no `url`,
`result` with `tracks` real MP3 tracks, titled "<prompt> (take N)"), as the hosted service's
Veo and Suno models answer.

`outstanding` counts the tasks created and not yet answered done, `most_outstanding` the most
there ever were at once (what a provider's cap on concurrent jobs counts)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from tests.support.fakes.base import Answer, FakeServer, Request, png
from tests.support.fakes.media_files import mp3, mp4

API_KEY = "fake-media-api-key-0123456789"


class FakeMediaAPI(FakeServer):
    def __init__(
        self,
        polls_before_done: int = 2,
        progress: int = 50,
        kinds: dict[str, str] | None = None,
        tracks: int = 2,
    ) -> None:
        super().__init__()
        self.kinds = kinds or {}
        self.track_count = tracks
        self.polls_before_done = polls_before_done
        self.progress = progress
        self.tasks: dict[str, dict[str, Any]] = {}
        self.result_url: str | None = None
        self.result_file: bytes | None = None
        self.next_id: str | None = None
        self.repeated_id: str | None = None
        self.result_answer: Callable[[str], Answer | None] | None = None
        self.outstanding = 0
        self.most_outstanding = 0

    @property
    def created(self) -> list[dict[str, Any]]:
        """The bodies of the create requests, in order."""
        return [task["body"] for task in self.tasks.values()]

    def answer(self, request: Request) -> Answer:
        path = request.path.split("?")[0]
        if path.startswith("/files/") and path.endswith(".mp4"):
            return Answer(200, mp4(), {"Content-Type": "video/mp4"})
        if path.startswith("/files/") and path.endswith(".mp3"):
            return Answer(200, mp3(1.0 + int(path[-5])), {"Content-Type": "audio/mpeg"})
        if path.startswith("/files/"):
            body = self.result_file if self.result_file is not None else png(1024, 1024)
            return Answer(200, body, {"Content-Type": "image/png"})
        if request.headers.get("authorization") != API_KEY:
            return Answer.json(200, {"code": 2, "message": "Missing or unknown API key."})
        body = request.json() or {}
        if path == "/v1/media/create":
            task_id, self.next_id = self.next_id or self.repeated_id or secrets.token_hex(12), None
            with self._lock:
                self.tasks[task_id] = {"polls": 0, "body": body, "done": False}
                self.outstanding += 1
                self.most_outstanding = max(self.most_outstanding, self.outstanding)
            return Answer.json(200, self._task(task_id, "idle"))
        if path == "/v1/media/result":
            task = self.tasks.get(body.get("task_id"))
            scripted = self.result_answer(body.get("task_id")) if self.result_answer else None
            if scripted is not None:
                return scripted
            if task is None:
                return Answer.json(200, {"code": 4, "message": "No such task."})
            task["polls"] += 1
            if task["polls"] <= self.polls_before_done:
                return Answer.json(
                    200, {**self._task(body["task_id"], "processing"), "progress": self.progress}
                )
            with self._lock:
                if not task["done"]:
                    task["done"] = True
                    self.outstanding -= 1
            return Answer.json(200, self._task(body["task_id"], "done"))
        return Answer.json(200, {"code": 99, "message": "No such API method."})

    def _task(self, task_id: str, status: str) -> dict[str, Any]:
        body = self.tasks[task_id]["body"]
        kind = self.kinds.get(body.get("model"), "image")
        if kind == "audio":
            return self._audio_task(task_id, status, body)
        extension = "mp4" if kind == "video" else "png"
        url = self.result_url or f"{self.base_url}/files/{task_id}_result.{extension}"
        url = url if status == "done" else None
        return {
            "code": 0,
            "id": task_id,
            "model": body.get("model"),
            "prompt": body.get("prompt"),
            "created_at": int(time.time()),
            "status": status,
            "url": url,
        }

    def _audio_task(self, task_id: str, status: str, body: dict[str, Any]) -> dict[str, Any]:
        """The hosted service's audio shape; track N lasts 1 + N seconds."""
        tracks = [
            {
                "id": f"{task_id}-{n}",
                "status": "succeeded",
                "audio_url": f"{self.base_url}/files/{task_id}_{n}.mp3",
                "duration": 1.0 + n,
                "title": f"{body.get('prompt')} (take {n})",
            }
            for n in range(1, self.track_count + 1)
        ]
        return {
            "code": 0,
            "id": task_id,
            "model": body.get("model"),
            "input": {"prompt": body.get("prompt")},
            "created_at": int(time.time()),
            "status": status,
            "result": tracks if status == "done" else None,
        }
