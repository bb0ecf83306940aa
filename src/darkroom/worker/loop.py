"""The claim loop of one worker.

A worker claims a batch (one statement; see TaskStore.claim), gives it up to the model's
`batch_wait_ms` to fill to `max_batch`, and runs it as one engine call. While the engine runs,
a heartbeat keeps the leases alive, records the batch's progress (at most one write a second)
and reads which of its tasks their owners canceled, for the engine to stop at its next step.
It then stores each image and completes each task under its lease. On stop it claims nothing
more, finishes the batch in hand, and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

import structlog

from darkroom import metrics
from darkroom.engines import BatchMonitor, Catalog, GenerationError, Job, ModelSpec
from darkroom.errors import CANCELED_MESSAGE
from darkroom.images import encode_webp
from darkroom.storage import Storage, result_key
from darkroom.tasks import Task, TaskStatus, TaskStore
from darkroom.worker.pool import EnginePool
from darkroom.worker.wakeup import Wakeup

log = structlog.get_logger("darkroom.worker")

ENGINE_FAILED_MESSAGE = (
    "The image could not be generated because of a server error; "
    "it was tried {attempts} times. Please try again later."
)


# The heartbeat's tick: how soon a cancel reaches the engine and progress reaches clients.
HEARTBEAT_TICK_SECONDS = 1.0
# How often a filling batch looks for more tasks while it waits.
BATCH_POLL_SECONDS = 0.02


def new_owner_name(index: int) -> str:
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
        self.owner = name or new_owner_name(0)
        self._stopping = asyncio.Event()
        self._next_requeue = 0.0

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.notify()

    async def run(self) -> None:
        log.info("worker started", owner=self.owner, models=self.models)
        while not self._stopping.is_set():
            try:
                await self._requeue_expired_now_and_then()
                batch = await self._claim_batch()
                if batch:
                    await self._process(batch)
                else:
                    await self.wakeup.wait(self.poll_seconds)
            except Exception:
                # The database may be briefly unreachable; keep the worker alive.
                log.exception("worker loop error", owner=self.owner)
                await self.wakeup.wait(self.poll_seconds)
        log.info("worker stopped", owner=self.owner)

    async def _requeue_expired_now_and_then(self) -> None:
        now = time.monotonic()
        if now >= self._next_requeue:
            self._next_requeue = now + max(self.lease_seconds / 3, 0.5)
            requeued, failed = await self.store.requeue_expired()
            if requeued or failed:
                log.warning("expired leases", requeued=requeued, failed=failed)

    async def _claim_batch(self) -> list[Task]:
        limit = max(
            (self.catalog[m].max_batch for m in self.models if m in self.catalog), default=1
        )
        batch = await self.store.claim(
            self.owner, limit=limit, lease_seconds=self.lease_seconds, models=self.models
        )
        if not batch:
            return batch
        try:
            return await self._complete_batch(batch)
        except Exception:
            # No heartbeat runs yet: give the tasks back now rather than when the leases expire
            # (if the database is what failed, this fails too and the leases do expire).
            await self.store.release(batch, self.owner)
            raise

    async def _complete_batch(self, batch: list[Task]) -> list[Task]:
        """Trims a claim to its model's max_batch, fills it, or gives it back when stopping."""
        spec = self.catalog[batch[0].model]
        if len(batch) > spec.max_batch:  # the claim was sized for another model's batches
            await self.store.release(batch[spec.max_batch :], self.owner)
            del batch[spec.max_batch :]
        await self._fill(batch, spec)
        if self._stopping.is_set():
            await self.store.release(batch, self.owner)
            return []
        return batch

    async def _fill(self, batch: list[Task], spec: ModelSpec) -> None:
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

    async def _process(self, batch: list[Task]) -> None:
        model = batch[0].model
        monitor = BatchMonitor()
        heartbeat = asyncio.create_task(self._heartbeat([t.id for t in batch], monitor))
        metrics.BATCH_SIZE.labels(model).observe(len(batch))
        log.info("batch", model=model, size=len(batch), tasks=[t.id for t in batch])
        try:
            async with self.engines.use(model) as engine:
                started = time.perf_counter()
                outcomes = await engine.generate([_job(task) for task in batch], monitor)
                metrics.GENERATION_SECONDS.labels(model).observe(time.perf_counter() - started)
            for task, outcome in zip(batch, outcomes, strict=True):
                if task.id in monitor.canceled:  # also for engines that cannot stop midway
                    outcome = GenerationError(CANCELED_MESSAGE)
                await self._finish(task, outcome)
        except GenerationError as exc:  # the whole batch cannot be made; retrying will not help
            for task in batch:
                await self._finish(task, exc)
        except Exception as exc:
            log.exception("engine failed", model=model, tasks=[t.id for t in batch])
            for task in batch:
                if task.id in monitor.canceled:
                    await self._finish(task, GenerationError(CANCELED_MESSAGE))
                    continue
                message = ENGINE_FAILED_MESSAGE.format(attempts=task.attempt)
                status = await self.store.fail(task, self.owner, message, retry=True)
                if status is TaskStatus.FAILED:
                    metrics.TASKS_FAILED.labels(model).inc()
                log.info("task not finished", task_id=task.id, status=status, error=repr(exc))
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _finish(self, task: Task, outcome: object) -> None:
        if isinstance(outcome, GenerationError):
            if await self.store.fail(task, self.owner, str(outcome), retry=False):
                metrics.TASKS_FAILED.labels(task.model).inc()
            log.info("task failed", task_id=task.id, message=str(outcome))
            return
        data = await asyncio.to_thread(encode_webp, outcome)
        key = result_key(task.id, self.retention_hours)
        await self.storage.put(key, data, "image/webp")
        if await self.store.complete(task, self.owner, key):
            metrics.TASKS_FINISHED.labels(task.model).inc()
            log.info("task done", task_id=task.id, key=key)
        else:
            log.warning("lease lost before completion; result discarded", task_id=task.id)

    async def _heartbeat(self, task_ids: list[str], monitor: BatchMonitor) -> None:
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


def _job(task: Task) -> Job:
    return Job(
        task_id=task.id,
        prompt=task.generation_prompt,
        width=task.width,
        height=task.height,
        seed=task.params.seed,
        negative_prompt=task.params.negative_prompt,
        images=task.params.images,
    )
