"""The task object as clients of the hosted service see it, field for field and in order.

One model serves both /docs and the answer: `TaskObject.of` sets the spec's seven fields and,
only where they apply, the extensions; the routes answer with the fields that were set
(`response_model_exclude_unset=True`), so an idle task has no `progress` and a done one no
`message` or `error` (tests/e2e/test_media_api.py checks the exact keys).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from darkroom.storage import Storage
from darkroom.tasks import Task, TaskStatus


class TaskObject(BaseModel):
    """The answer of /create, /result and /cancel."""

    code: Literal[0] = Field(description="0: the request succeeded")
    id: str
    model: str
    prompt: str
    created_at: int
    status: TaskStatus
    url: str | None
    progress: int | None = Field(None, description="Extension: 0 to 100, while processing")
    queue_position: int | None = Field(
        None, description="Extension: tasks ahead of this one in the queue, while idle"
    )
    message: str | None = Field(None, description="Why the task failed, only when it failed")
    error: str | None = Field(
        None, description="The same text as `message`, which some clients read instead"
    )

    @classmethod
    def of(
        cls,
        task: Task,
        storage: Storage,
        retention_seconds: float,
        *,
        queue_position: int | None = None,
    ) -> TaskObject:
        """The spec's seven fields; then, as extensions, `progress` while processing and
        `queue_position` while idle (when known); `message` and `error` (the same text: the
        hosted service's clients read one or the other) only for a failed task."""
        return cls(
            code=0,
            id=task.id,
            model=task.model,
            prompt=task.public_prompt,
            created_at=task.created_at,
            status=task.status,
            url=_link(task, storage, retention_seconds),
            **_extensions(task, queue_position),
        )


def _link(task: Task, storage: Storage, retention_seconds: float) -> str | None:
    if task.status is not TaskStatus.DONE or not task.result_key or not task.finished_at:
        return None
    # The expiry is fixed by when the image was made, so every poll returns the same link.
    return storage.url(task.result_key, task.finished_at + retention_seconds)


def _extensions(task: Task, queue_position: int | None) -> dict[str, Any]:
    """The fields beyond the spec's that apply to the task in its present state."""
    if task.status is TaskStatus.PROCESSING:
        return {"progress": task.progress or 0}
    if task.status is TaskStatus.IDLE and queue_position is not None:
        return {"queue_position": queue_position}
    if task.status is TaskStatus.FAILED:
        return {"message": task.message, "error": task.message}
    return {}
