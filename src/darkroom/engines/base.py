"""What every engine offers the worker and its engine pool: turn a batch of compatible jobs into
images, and, for engines that keep weights in memory, load them, say what they take and on which
device. The pool calls these (worker/pool.py), never probes for them."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar

from PIL import Image

from darkroom.engines.catalog import ModelSpec
from darkroom.engines.media import Media
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
    images: tuple[Image.Image, ...] = ()
    """The task's reference images, read and decoded (RGB) by the worker, in request order."""


# An engine answers each job with its media (an image, a clip, tracks: the model's kind), or
# with the reason that job alone failed.
Outcome = Media | GenerationError


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


class Engine(abc.ABC):
    """The contract of an engine. The defaults suit an upstream engine (an HTTP client): no
    weights, nothing to load, no memory, no device. A local engine overrides all four; a custom
    engine (`engine = "package.module:factory"`) subclasses this too."""

    spec: ModelSpec

    holds_weights: ClassVar[bool] = False
    """Whether it keeps model weights in this process: the pool makes room before loading it
    and may unload it to make room for another."""

    @property
    def device(self) -> str | None:
        """Where its weights are, or will be once loaded ("cuda", "cuda:1", "cpu"); None for an
        engine without weights."""
        return None

    async def load(self) -> None:
        """Loads the weights now, so that their memory counts before the next model loads.
        Called once by the pool before the first batch; out of memory, it may be called again."""
        return None

    def memory_bytes(self) -> int:
        """Bytes its weights take: loaded, what they hold; before, a fair estimate."""
        return 0

    @abc.abstractmethod
    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        """Media for the jobs, in order. Raising fails (and may retry) the whole batch."""

    async def close(self) -> None:
        """Frees what it holds (weights, connections); the pool then forgets it."""
        return None
