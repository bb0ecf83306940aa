"""What every engine offers the worker: turn a batch of compatible jobs into images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from darkroom.engines.catalog import ModelSpec
from darkroom.errors import GenerationError


@dataclass(frozen=True)
class Job:
    """One task's share of a batch: everything an engine needs, nothing of the queue."""

    task_id: str
    prompt: str
    width: int
    height: int
    seed: int
    negative_prompt: str | None = None
    images: tuple[str, ...] = ()
    options: dict[str, Any] | None = None


# An engine answers each job with an image, or with the reason that job alone failed.
Outcome = Image.Image | GenerationError


@dataclass
class BatchMonitor:
    """Shared between the worker and an engine running a batch (often in another thread):
    the engine reports how far it is, the worker marks tasks whose owners canceled them.
    Plain attribute writes only, so either side may touch it from any thread."""

    progress: float = 0.0  # 0.0 to 1.0, for the whole batch
    canceled: set[str] = field(default_factory=set)

    def report(self, fraction: float) -> None:
        self.progress = min(max(fraction, 0.0), 1.0)

    def is_canceled(self, task_id: str) -> bool:
        return task_id in self.canceled


class Engine(Protocol):
    spec: ModelSpec

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        """Images for the jobs, in order. Raising fails (and may retry) the whole batch."""
        ...

    async def close(self) -> None: ...
