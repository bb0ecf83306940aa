"""The task object as clients of the hosted service see it, field for field and in order."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

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
    progress: int | None = Field(None, description="Extension: 0 to 100, while processing")
    queue_position: int | None = Field(
        None, description="Extension: tasks ahead of this one in the queue, while idle"
    )
    message: str | None = None


def task_payload(
    task: Task, storage: Storage, retention_seconds: float, *, queue_position: int | None = None
) -> dict[str, Any]:
    """The spec's seven fields in order; then, as extensions, `progress` while processing and
    `queue_position` while idle (when known); `message` only for a failed task."""
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
    if task.status is TaskStatus.PROCESSING:
        payload["progress"] = task.progress or 0
    if task.status is TaskStatus.IDLE and queue_position is not None:
        payload["queue_position"] = queue_position
    if task.status is TaskStatus.FAILED:
        payload["message"] = task.message
    return payload
