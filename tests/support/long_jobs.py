"""A video engine whose clip takes as long as the test holds it, for the lease tests
(tests/integration/test_long_jobs.py): its thread stays busy in Python, holding the GIL most of
the time as a pipeline's glue code does, until `release` is set; `runs` lists the task ids it
was called for, in order, across the process. Named in a catalog as
`engine = "tests.support.long_jobs:open_engine"`."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from darkroom.engines import BatchMonitor, Engine, Job, ModelSpec
from darkroom.engines.base import Outcome
from darkroom.engines.media import EncodedVideo
from tests.support.fakes.media_files import mp4

release = threading.Event()
runs: list[str] = []
CLIP_FRAMES = 8


class HeldVideoEngine(Engine):
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        runs.extend(job.task_id for job in jobs)
        await asyncio.to_thread(_busy_until_released)
        return [EncodedVideo(mp4(CLIP_FRAMES)) for _ in jobs]


def _busy_until_released() -> None:
    while not release.is_set():
        sum(range(10_000))  # pure Python: the GIL is given up only at the interpreter's switches


def open_engine(spec: ModelSpec, data_dir: Path) -> HeldVideoEngine:
    return HeldVideoEngine(spec)
