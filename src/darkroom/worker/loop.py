"""The claim loop of one worker. Processing a batch reads like a diffusers pipeline:

1. Claim: lease the oldest ready task's batch (one statement; see TaskStore.claim).
2. Fill: trim it to the model's `max_batch` and give it up to `batch_wait_ms` to fill.
3. Read images: each task's reference images, from storage or through the guarded fetcher
   (references.py); a task whose image cannot be had fails alone, without retry. From here on a
   heartbeat keeps the leases alive, records the batch's progress (at most one write a second)
   and reads which of its tasks their owners canceled, for the engine to stop at its next step.
4. Generate: one engine call for the tasks that have their images.
5. Store and finish: encode and store each task's files (image, clip or tracks), and finish
   each task under its lease.

Every task of a batch ends in one outcome: an image, a `GenerationError` (retrying will not
help; a canceled task is `TaskCanceled` whatever its engine answered), or a server error that
is tried again while attempts remain. A model whose engine raises `ConfigurationError` (an
unsupported pipeline, say) cannot run here until an operator changes it: its tasks fail at once
with a message that says so, and the worker does not load it again
(tests/integration/test_unsupported_pipeline.py). On stop the worker claims nothing more,
finishes the batch in hand, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from PIL import Image

from darkroom import metrics
from darkroom.engines import BatchMonitor, Catalog, Job, ModelSpec
from darkroom.engines.encoding import encode
from darkroom.engines.media import Media
from darkroom.errors import ConfigurationError, GenerationError, TaskCanceled
from darkroom.fetch import Fetcher
from darkroom.storage import Storage, content_type_of, result_key
from darkroom.tasks import Task, TaskStatus, TaskStore
from darkroom.tasks.model import ResultFile
from darkroom.worker.pool import EnginePool
from darkroom.worker.references import ReferenceImages
from darkroom.worker.wakeup import Wakeup

log = structlog.get_logger("darkroom.worker")

ENGINE_FAILED_MESSAGE = (
    "The image could not be generated because of a server error; "
    "it was tried {attempts} times. Please try again later."
)
UNUSABLE_MODEL_MESSAGE = (
    "The model {model} cannot run on this server: {reason}. Please tell the operator."
)


# The heartbeat's tick: how soon a cancel reaches the engine and progress reaches clients.
HEARTBEAT_TICK_SECONDS = 1.0
# How often a filling batch looks for more tasks while it waits.
BATCH_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class ServerError:
    """The outcome of a task whose engine failed unexpectedly: tried again while attempts
    remain (the error is logged, never shown to the user)."""

    error: Exception


# What a task of a batch ends with.
Outcome = Media | GenerationError | ServerError


def new_owner_name(index: int | str) -> str:
    """Names a lease holder: host, process, which one of the process's, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{index}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        store: TaskStore,
        storage: Storage,
        catalog: Catalog,
        engines: EnginePool,
        *,
        retention_hours: float,
        lease_seconds: float = 30.0,
        poll_seconds: float = 1.0,
        models: list[str] | None = None,
        wakeup: Wakeup | None = None,
        name: str | None = None,
        fetcher: Fetcher | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.catalog = catalog
        self.engines = engines
        self.retention_hours = retention_hours
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.models = models if models is not None else catalog.ids()
        self.wakeup = wakeup or Wakeup()
        self.references = ReferenceImages(storage, fetcher or Fetcher())
        self.owner = name or new_owner_name(0)
        self._stopping = asyncio.Event()
        # Models whose engine cannot work here, with why: their tasks fail without a load.
        self._unusable: dict[str, ConfigurationError] = {}

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.notify()

    async def run(self) -> None:
        log.info("worker started", owner=self.owner, models=self.models)
        while not self._stopping.is_set():
            try:
                if not await self._process_next_batch():
                    await self.wakeup.wait(self.poll_seconds)
            except Exception:
                # The database may be briefly unreachable; keep the worker alive.
                log.exception("worker loop error", owner=self.owner)
                await self.wakeup.wait(self.poll_seconds)
        log.info("worker stopped", owner=self.owner)

    async def _process_next_batch(self) -> bool:
        """Runs one batch through the five steps; False when there was none to claim."""
        # 1. Claim: lease the oldest ready task and the tasks of its batch key
        limit = max(
            (self.catalog[m].max_batch for m in self.models if m in self.catalog), default=1
        )
        batch = await self.store.claim(
            self.owner, limit=limit, lease_seconds=self.lease_seconds, models=self.models
        )
        if not batch:
            return False
        # 2. Fill: trim to the model's max_batch, wait up to batch_wait_ms for more
        try:
            await self._fill_batch(batch)
        except Exception:
            # No heartbeat runs yet: give the tasks back now rather than when the leases expire
            # (if the database is what failed, this fails too and the leases do expire).
            await self.store.release(batch, self.owner)
            raise
        if not batch:  # given back: the worker is stopping
            return True
        monitor = BatchMonitor()
        async with self._heartbeat([task.id for task in batch], monitor):
            # 3. Read images: each task's reference images; one that cannot be had fails its task
            jobs = await self._jobs(batch)
            # 4. Generate: one engine call for the tasks that have their images
            outcomes = await self._generate(batch, jobs, monitor)
            # 5. Store and finish: each image stored, each task finished under its lease
            for task, outcome in zip(batch, outcomes, strict=True):
                await self._finish(task, outcome)
        return True

    async def _fill_batch(self, batch: list[Task]) -> None:
        """Trims a claim to its model's max_batch and fills it, in place; empties it (giving
        the tasks back) when the worker is stopping."""
        spec = self.catalog[batch[0].model]
        if len(batch) > spec.max_batch:  # the claim was sized for another model's batches
            await self.store.release(batch[spec.max_batch :], self.owner)
            del batch[spec.max_batch :]
        await self._wait_for_more(batch, spec)
        if self._stopping.is_set():
            await self.store.release(batch, self.owner)
            batch.clear()

    async def _wait_for_more(self, batch: list[Task], spec: ModelSpec) -> None:
        """Adds to the batch tasks of its batch key that arrive within the model's
        batch_wait_ms: one GPU call for many tasks costs little more than for one. Returns as
        soon as the batch is full, rather than always waiting the whole time. Tasks join the
        batch as they are claimed, so that an error midway leaves none unaccounted for."""
        deadline = time.monotonic() + spec.batch_wait_ms / 1000
        while len(batch) < spec.max_batch and not self._stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # A plain sleep: the shared wakeup may wait far longer than this on PostgreSQL.
            await asyncio.sleep(min(remaining, BATCH_POLL_SECONDS))
            batch += await self.store.claim(
                self.owner,
                limit=spec.max_batch - len(batch),
                lease_seconds=self.lease_seconds,
                batch_key=batch[0].batch_key,
            )

    async def _jobs(self, batch: list[Task]) -> list[Job | Outcome]:
        """Each task's job, its reference images read; or the outcome of a task whose images
        could not be read. The tasks' images are read concurrently."""
        spec = self.catalog[batch[0].model]
        return list(await asyncio.gather(*(self._job(task, spec) for task in batch)))

    async def _job(self, task: Task, spec: ModelSpec) -> Job | Outcome:
        try:
            images = await self.references.read(task.params.images)
        except GenerationError as exc:  # FetchFailed: the same URL would fail the same way
            return exc
        except Exception as exc:  # the storage failed: worth another try
            log.exception("reading reference images failed", task_id=task.id)
            return ServerError(exc)
        return _job(task, spec, images)

    async def _generate(
        self, batch: list[Task], jobs: list[Job | Outcome], monitor: BatchMonitor
    ) -> list[Outcome]:
        """One engine call for the jobs that are ready; an outcome per task, in order."""
        ready = [job for job in jobs if isinstance(job, Job)]
        called = await self._call(batch[0].model, ready, monitor)
        made = dict(zip([job.task_id for job in ready], called, strict=True))
        outcomes = [made[job.task_id] if isinstance(job, Job) else job for job in jobs]
        # Canceled is canceled, also for engines that cannot stop midway or that failed.
        return [
            TaskCanceled() if task.id in monitor.canceled else outcome
            for task, outcome in zip(batch, outcomes, strict=True)
        ]

    async def _call(self, model: str, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        """The engine's outcomes for the jobs, its failures turned into outcomes."""
        if not jobs:
            return []
        metrics.BATCH_SIZE.labels(model).observe(len(jobs))
        log.info("batch", model=model, size=len(jobs), tasks=[job.task_id for job in jobs])
        outcomes: list[Outcome]
        try:
            outcomes = list(await self._run_engine(model, jobs, monitor))
        except ConfigurationError as exc:
            self._unusable[model] = exc
            log.error("model cannot run on this server", model=model, error=str(exc))
            message = UNUSABLE_MODEL_MESSAGE.format(model=model, reason=str(exc).rstrip("."))
            outcomes = [GenerationError(message)] * len(jobs)
        except GenerationError as exc:  # the whole batch cannot be made; retrying will not help
            outcomes = [exc] * len(jobs)
        except Exception as exc:
            log.exception("engine failed", model=model, tasks=[job.task_id for job in jobs])
            outcomes = [ServerError(exc)] * len(jobs)
        return outcomes

    async def _run_engine(
        self, model: str, jobs: list[Job], monitor: BatchMonitor
    ) -> list[Media | GenerationError]:
        if model in self._unusable:  # not loaded again: it failed for good
            raise self._unusable[model]
        async with self.engines.use(model) as engine:
            started = time.perf_counter()
            outcomes = await engine.generate(jobs, monitor)
            metrics.GENERATION_SECONDS.labels(model).observe(time.perf_counter() - started)
        return outcomes

    async def _finish(self, task: Task, outcome: Outcome) -> None:
        if isinstance(outcome, ServerError):
            await self._retry(task, outcome.error)
        elif isinstance(outcome, GenerationError):
            if await self.store.fail(task, self.owner, outcome.message, retry=False):
                metrics.TASKS_FAILED.labels(task.model).inc()
            log.info("task failed", task_id=task.id, message=outcome.message)
        else:
            try:
                await self._store_and_complete(task, outcome)
            except Exception as exc:
                # The storage failed (S3 away, a full disk): the task goes back to the queue
                # with its retry delay, which grows, rather than waiting out its lease and
                # being rerun at once until its attempts are spent while the storage is down.
                log.exception("storing the result failed", task_id=task.id)
                await self._retry(task, exc)
        self.wakeup.finished(task.id)  # a generate call waiting for this task reads it again

    async def _retry(self, task: Task, error: Exception) -> None:
        message = ENGINE_FAILED_MESSAGE.format(attempts=task.attempt)
        status = await self.store.fail(task, self.owner, message, retry=True)
        if status is TaskStatus.FAILED:
            metrics.TASKS_FAILED.labels(task.model).inc()
        log.info("task not finished", task_id=task.id, status=status, error=repr(error))

    async def _store_and_complete(self, task: Task, media: Media) -> None:
        files = await self._store(task, media)
        # An image's one file is its result_key alone, as before kinds; clips and tracks list
        # their files, with durations and titles.
        listed = files if task.kind != "image" else []
        if await self.store.complete(task, self.owner, files[0].key, listed):
            metrics.TASKS_FINISHED.labels(task.model).inc()
            log.info("task done", task_id=task.id, keys=[file.key for file in files])
        else:
            log.warning("lease lost before completion; result discarded", task_id=task.id)
            with contextlib.suppress(Exception):  # no row names them; the lifecycle rule gets them
                await self.storage.delete([file.key for file in files])

    async def _store(self, task: Task, media: Media) -> list[ResultFile]:
        """Encodes the media in a thread (WebP, MP4, MP3) and stores each file under its key."""
        encoded = await asyncio.to_thread(encode, media)
        files = []
        for index, file in enumerate(encoded):
            # A key of this attempt's own: a worker that lost its lease (paused past it, say)
            # stores beside the attempt that took over, never over its result.
            key = result_key(
                task.id, self.retention_hours, task.attempt, extension=file.extension, index=index
            )
            await self.storage.put(key, file.data, content_type_of(key))
            files.append(ResultFile(key, file.duration, file.title))
        return files

    @contextlib.asynccontextmanager
    async def _heartbeat(self, task_ids: list[str], monitor: BatchMonitor) -> AsyncIterator[None]:
        """Beats for the batch while the block runs."""
        beating = asyncio.create_task(self._beat(task_ids, monitor))
        try:
            yield
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _beat(self, task_ids: list[str], monitor: BatchMonitor) -> None:
        """Every tick: reads cancel requests into the monitor; at most one write, which
        extends the leases when due and records progress when it moved."""
        tick = min(HEARTBEAT_TICK_SECONDS, self.lease_seconds / 3)
        next_extension = time.monotonic() + self.lease_seconds / 3
        written = 0
        while True:
            await asyncio.sleep(tick)
            try:
                monitor.canceled |= await self.store.cancel_requested(task_ids)
                # 99 at most: a task is 100 only once its image is stored.
                progress = min(int(monitor.progress * 100), 99)
                extend = time.monotonic() >= next_extension
                if extend or progress != written:
                    await self.store.beat(
                        self.owner,
                        task_ids,
                        lease_seconds=self.lease_seconds if extend else None,
                        progress=progress if progress != written else None,
                    )
                    written = progress
                    if extend:
                        next_extension = time.monotonic() + self.lease_seconds / 3
            except Exception:
                log.exception("heartbeat failed", tasks=task_ids)


def _job(task: Task, spec: ModelSpec, images: tuple[Image.Image, ...]) -> Job:
    """The task's job; an edit of a model whose edits keep their input's shape is drawn at the
    model's ratio nearest to the first image's, whatever ratio the request named."""
    width, height = task.width, task.height
    if images and spec.images_override_ar:
        width, height = spec.size_for_image(*images[0].size)
    return Job(
        task_id=task.id,
        prompt=task.generation_prompt,
        width=width,
        height=height,
        seed=task.params.seed,
        negative_prompt=task.params.negative_prompt,
        images=images,
    )
