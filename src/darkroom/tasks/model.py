"""The task record, its states, its parameters, and the one factory for new tasks.

`NewTask.build` is how every caller (the create route, the benchmarks, the tests) makes a task,
so the id, its timestamps and the batch key are derived in one place. A task's parameters are
what its engine needs beyond the prompt and the size; they are stored as the `params` JSON
column, and rows written by older versions (which also carried `steps` and `guidance`, never
settable by a request) still read back.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from darkroom.ids import created_at_of, new_task_id
from darkroom.money import ZERO


class TaskStatus(enum.StrEnum):
    IDLE = "idle"
    PROCESSING = "processing"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class TaskParams:
    """What a task asks of its engine besides prompt and size. The seed is fixed when the
    task is created, so a retried task makes the same image."""

    seed: int
    negative_prompt: str | None = None
    images: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The `params` column: keys only for what is set, as the API has always written it."""
        data: dict[str, Any] = {"seed": self.seed}
        if self.negative_prompt:
            data["negative_prompt"] = self.negative_prompt
        if self.images:
            data["images"] = list(self.images)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TaskParams:
        return cls(
            seed=int(data["seed"]),
            negative_prompt=data.get("negative_prompt"),
            images=tuple(data.get("images", ())),
        )


def batch_key(
    model: str, width: int, height: int, kind: str = "image", clip: tuple[int, int] | None = None
) -> str:
    """Tasks with equal keys can share one engine call: same model, kind and size, and for a
    clip the same frames and fps. Seeds, prompts and negative prompts may differ within a batch.
    An image's key is `model|WxH`, as it always was, so that queued tasks keep their batches."""
    key = f"{model}|{width}x{height}" if kind == "image" else f"{model}|{kind}|{width}x{height}"
    if clip is not None:
        frames, fps = clip
        key += f"|{frames}f@{fps}"
    return key


@dataclass(frozen=True)
class ResultFile:
    """One stored file of a done task: an image, a clip, or one of an audio model's tracks."""

    key: str
    duration: float | None = None
    """Seconds, for a clip or a track (read from the file)."""
    title: str | None = None
    """A track's title."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key}
        if self.duration is not None:
            data["duration"] = self.duration
        if self.title is not None:
            data["title"] = self.title
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResultFile:
        duration = data.get("duration")
        return cls(
            key=str(data["key"]),
            duration=float(duration) if duration is not None else None,
            title=data.get("title"),
        )


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
    params: TaskParams
    batch_key: str
    created_at: int
    enqueued_at: float
    max_attempts: int
    cost: Decimal = ZERO
    """The model's price: what creating the task charges its key."""
    callback_url: str | None = None
    """Where its end is posted (webhooks/), if anywhere."""
    kind: str = "image"
    """What its model makes (image, video, audio): the answer's shape follows it."""

    @classmethod
    def build(
        cls,
        *,
        key_id: int,
        model: str,
        prompt: str,
        size: tuple[int, int],
        params: TaskParams,
        max_attempts: int,
        ar: str | None = None,
        enqueued_at: float | None = None,
        cost: Decimal = ZERO,
        callback_url: str | None = None,
        kind: str = "image",
        clip: tuple[int, int] | None = None,
    ) -> NewTask:
        """A task enqueued now (or at `enqueued_at`), with a fresh id stamped with that time."""
        now = time.time() if enqueued_at is None else enqueued_at
        task_id = new_task_id(now)
        width, height = size
        return cls(
            id=task_id,
            key_id=key_id,
            model=model,
            prompt=prompt,
            ar=ar,
            width=width,
            height=height,
            params=params,
            batch_key=batch_key(model, width, height, kind, clip),
            created_at=created_at_of(task_id),
            enqueued_at=now,
            max_attempts=max_attempts,
            cost=cost,
            callback_url=callback_url,
            kind=kind,
        )

    def row(self) -> dict[str, Any]:
        """The task table's columns for this task, before it is queued."""
        return {**vars(self), "params": self.params.to_json()}


@dataclass(frozen=True)
class Task:
    id: str
    key_id: int
    model: str
    prompt: str
    ar: str | None
    width: int
    height: int
    params: TaskParams
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
    cost: Decimal = ZERO
    refunded_at: float | None = None
    callback_url: str | None = None
    kind: str = "image"
    result_files: tuple[ResultFile, ...] = ()
    """Every stored file of a done task (an audio model's tracks); empty for tasks that ended
    before kinds existed, whose one file is `result_key`."""

    @classmethod
    def from_row(cls, row: Any) -> Task:
        """The task of a table row (a SQLAlchemy row, or a mapping of its columns' values)."""
        values = dict(row._mapping if hasattr(row, "_mapping") else row)
        values["result_files"] = tuple(
            ResultFile.from_json(item) for item in values.get("result_files") or ()
        )
        values["status"] = TaskStatus(values["status"])
        values["cancel_requested"] = bool(values["cancel_requested"])
        values["params"] = TaskParams.from_json(values["params"])
        return cls(**values)

    @property
    def public_prompt(self) -> str:
        """The prompt as the hosted service echoes it: with ` --ar <ratio>` when one was given."""
        return f"{self.prompt} --ar {self.ar}" if self.ar else self.prompt

    @property
    def charged(self) -> Decimal:
        """What the task costs its key now: its cost, or 0 once it was given back."""
        return ZERO if self.refunded_at is not None else self.cost

    @property
    def stored_keys(self) -> list[str]:
        """The keys of every file the task stored, for the retention sweep to delete."""
        keys = [file.key for file in self.result_files]
        if self.result_key and self.result_key not in keys:
            keys.insert(0, self.result_key)
        return keys

    @property
    def generation_prompt(self) -> str:
        return self.prompt.strip()
