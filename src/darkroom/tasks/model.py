"""The task record and its states."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class TaskStatus(enum.StrEnum):
    IDLE = "idle"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.DONE, TaskStatus.FAILED)


@dataclass(frozen=True)
class NewTask:
    """What the API has validated and the store is asked to queue."""

    id: str
    key_id: int
    model: str
    prompt: str
    ar: str | None
    width: int
    height: int
    params: dict[str, Any]
    batch_key: str
    created_at: int
    enqueued_at: float
    max_attempts: int


@dataclass(frozen=True)
class Task:
    id: str
    key_id: int
    model: str
    prompt: str
    ar: str | None
    width: int
    height: int
    params: dict[str, Any]
    batch_key: str
    status: TaskStatus
    created_at: int
    enqueued_at: float
    attempt: int
    max_attempts: int
    run_after: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None
    progress: int | None = None
    cancel_requested: bool = False
    result_key: str | None = None
    message: str | None = None
    purged_at: float | None = None

    @classmethod
    def from_row(cls, row: Any) -> Task:
        values = dict(row._mapping)
        values["status"] = TaskStatus(values["status"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        return cls(**values)

    @property
    def public_prompt(self) -> str:
        """The prompt as the hosted service echoes it: with ` --ar <ratio>` when one was given."""
        return f"{self.prompt} --ar {self.ar}" if self.ar else self.prompt

    @property
    def generation_prompt(self) -> str:
        return self.prompt.strip()
