"""The task object as clients of the hosted service see it, field for field and in order."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from darkroom.storage import Storage
from darkroom.tasks import Task, TaskStatus


class TaskObject(BaseModel):
    """The shape of /create and /result answers (documented for /docs)."""

    code: int = 0
    id: str
    model: str
    prompt: str
    created_at: int
    status: str
    url: str | None
    message: str | None = None


def task_payload(task: Task, storage: Storage, retention_seconds: float) -> dict[str, Any]:
    url = None
    if task.status is TaskStatus.DONE and task.result_key and task.finished_at:
        # The expiry is fixed by when the image was made, so every poll returns the same link.
        url = storage.url(task.result_key, task.finished_at + retention_seconds)
    payload: dict[str, Any] = {
        "code": 0,
        "id": task.id,
        "model": task.model,
        "prompt": task.public_prompt,
        "created_at": task.created_at,
        "status": task.status.value,
        "url": url,
    }
    if task.status is TaskStatus.FAILED:
        payload["message"] = task.message
    return payload
