"""The task object as clients of the hosted service see it, field for field and in order.

One model serves both /docs and the answer: `TaskObject.of` sets the spec's eight fields and,
only where they apply, the extensions; the routes answer with the fields that were set
(`response_model_exclude_unset=True`), so an idle task has no `progress` and a done one no
`message` or `error` (tests/e2e/test_media_api.py checks the exact keys).

An audio model's task answers in the hosted service's audio shape instead of `prompt` and
`url`: `input` (the request's fields) and `result`, null until done, then its tracks, each with
its own link (tests/e2e/test_audio_relay.py). Images and videos share the image shape; a video's
`url` is its MP4.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from darkroom.money import json_number
from darkroom.storage import Storage
from darkroom.tasks import Task, TaskStatus
from darkroom.tasks.model import ResultFile


class AudioTrack(BaseModel):
    """One track of an audio model's result."""

    id: str
    status: Literal["succeeded"] = "succeeded"
    audio_url: str = Field(description="A link to the MP3, as `url` is for an image")
    duration: float | None = Field(description="Seconds, read from the file")
    title: str


class TaskObject(BaseModel):
    """The answer of /create, /result and /cancel."""

    code: Literal[0] = Field(description="0: the request succeeded")
    id: str
    model: str
    prompt: str | None = Field(None, description="The prompt (not for audio models)")
    created_at: int
    status: TaskStatus
    url: str | None = Field(
        None, description="The WebP image or MP4 video once done (not for audio models)"
    )
    input: dict[str, Any] | None = Field(None, description="Audio models: the request's fields")
    result: list[AudioTrack] | None = Field(
        None, description="Audio models: null until done, then the tracks"
    )
    cost: int | float = Field(
        description="What the task charges its key (0 for a free model, and once refunded)"
    )
    progress: int | None = Field(None, description="Extension: 0 to 100, while processing")
    queue_position: int | None = Field(
        None,
        description="Extension, while idle: about how many tasks arrived before this one and "
        "still wait (refreshed within a second; under fair share an upper bound)",
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
        """The spec's eight fields; then, as extensions, `progress` while processing and
        `queue_position` while idle (when known); `message` and `error` (the same text: the
        hosted service's clients read one or the other) only for a failed task."""
        if task.kind == "audio":
            shape: dict[str, Any] = {
                "input": _input(task),
                "result": _tracks(task, storage, retention_seconds),
            }
        else:
            shape = {
                "prompt": task.public_prompt,
                "url": result_link(task, storage, retention_seconds),
            }
        return cls(
            code=0,
            id=task.id,
            model=task.model,
            created_at=task.created_at,
            status=task.status,
            **shape,
            cost=json_number(task.charged),
            **_extensions(task, queue_position),
        )


def result_link(task: Task, storage: Storage, retention_seconds: float) -> str | None:
    """The link to the task's (first) file once done, whatever its kind."""
    if task.status is not TaskStatus.DONE or not task.result_key or not task.finished_at:
        return None
    # The expiry is fixed by when the image was made, so every poll returns the same link.
    return storage.url(task.result_key, task.finished_at + retention_seconds)


def _input(task: Task) -> dict[str, Any]:
    """The request's fields, as the hosted service echoes them for audio."""
    fields: dict[str, Any] = {"prompt": task.prompt}
    if task.ar:
        fields["ar"] = task.ar
    if task.params.negative_prompt:
        fields["negative_prompt"] = task.params.negative_prompt
    return fields


def _tracks(task: Task, storage: Storage, retention_seconds: float) -> list[AudioTrack] | None:
    if task.status is not TaskStatus.DONE or not task.finished_at:
        return None
    expires_at = task.finished_at + retention_seconds
    files = task.result_files or ((ResultFile(task.result_key),) if task.result_key else ())
    return [
        AudioTrack(
            id=f"{task.id}_{index + 1}",
            status="succeeded",
            audio_url=storage.url(file.key, expires_at),
            duration=file.duration,
            title=file.title or f"Track {index + 1}",
        )
        for index, file in enumerate(files)
    ]


def _extensions(task: Task, queue_position: int | None) -> dict[str, Any]:
    """The fields beyond the spec's that apply to the task in its present state."""
    if task.status is TaskStatus.PROCESSING:
        return {"progress": task.progress or 0}
    if task.status is TaskStatus.IDLE and queue_position is not None:
        return {"queue_position": queue_position}
    if task.status is TaskStatus.FAILED:
        return {"message": task.message, "error": task.message}
    return {}
