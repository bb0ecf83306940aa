"""What local engines share around one pipeline call: live progress, cancellation at the next
denoising step, and out-of-memory recovery.

diffusers calls `callback_on_step_end(pipeline, step, timestep, tensors)` after every step; the
callback reports progress to the batch's monitor and, once every task of the call is canceled,
sets the pipeline's `_interrupt` flag, which makes the pipeline skip its remaining steps.
A task canceled while others go on still finishes with the call (its latents are in the same
tensor), and is then answered "canceled" instead of with its image.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import structlog

from darkroom.engines.base import BatchMonitor, GenerationError, Job, Outcome
from darkroom.engines.media import Media
from darkroom.errors import TaskCanceled

log = structlog.get_logger("darkroom.engines")

OUT_OF_MEMORY = (
    "The image did not fit in the GPU's memory, even generated alone. "
    "Try a smaller aspect ratio, or try again later."
)


class StepCallback:
    """A `callback_on_step_end` for one pipeline call that covers [start, start + span] of
    the batch's progress (a batch may take several calls)."""

    def __init__(
        self, monitor: BatchMonitor, jobs: list[Job], *, start: float = 0.0, span: float = 1.0
    ) -> None:
        self.monitor = monitor
        self.task_ids = [job.task_id for job in jobs]
        self.start = start
        self.span = span
        self.interrupted = False

    def all_canceled(self) -> bool:
        return all(self.monitor.is_canceled(task_id) for task_id in self.task_ids)

    def __call__(
        self, pipeline: Any, step: int, timestep: Any, tensors: dict[str, Any]
    ) -> dict[str, Any]:
        total = getattr(pipeline, "_num_timesteps", None) or step + 1
        self.monitor.report(self.start + self.span * (step + 1) / total)
        if self.all_canceled() and not self.interrupted:
            pipeline._interrupt = True  # diffusers' own flag: the remaining steps are skipped
            self.interrupted = True
            log.info("batch interrupted", tasks=self.task_ids, step=step + 1, steps=total)
        return {}  # no tensor replaced


# Runs one pipeline call for the jobs and returns their media (images or clips), in order.
PipelineCall = Callable[[list[Job], StepCallback], list[Media]]


def run_jobs(
    call: PipelineCall,
    jobs: list[Job],
    monitor: BatchMonitor,
    *,
    start: float = 0.0,
    span: float = 1.0,
) -> list[Outcome]:
    """The jobs' outcomes: images, TaskCanceled for canceled tasks, and for a call that ran out
    of memory, the jobs again one by one (a batch of 8 may fail where 1 fits)."""
    callback = StepCallback(monitor, jobs, start=start, span=span)
    if callback.all_canceled():
        return [TaskCanceled() for _ in jobs]
    out_of_memory = False
    try:
        images: list[Outcome] = list(call(jobs, callback))
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        out_of_memory = True
        log.warning("out of memory", tasks=callback.task_ids, error=str(exc)[:200])
    if out_of_memory:
        # Outside the except block, so the traceback's frames no longer hold the activations.
        release_cached_memory()
        if len(jobs) == 1:
            return [GenerationError(OUT_OF_MEMORY)]
        part = span / len(jobs)
        outcomes: list[Outcome] = []
        for index, job in enumerate(jobs):
            outcomes += run_jobs(call, [job], monitor, start=start + index * part, span=part)
        return outcomes
    return [
        TaskCanceled() if monitor.is_canceled(job.task_id) else image
        for job, image in zip(jobs, images, strict=True)
    ]


def is_out_of_memory(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    # The CPU allocator raises a plain RuntimeError.
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def release_cached_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
