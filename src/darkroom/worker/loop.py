"""The claim loop of one worker.

A worker claims a batch (one statement; see TaskStore.claim), keeps its leases alive with a
heartbeat while the engine runs, stores each image and completes each task under its lease.
On stop it claims nothing more, finishes the batch in hand, and returns.
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
from darkroom.engines import BatchMonitor, Catalog, GenerationError, Job
from darkroom.images import encode_webp
from darkroom.storage import Storage, result_key
from darkroom.tasks import Task, TaskStatus, TaskStore
from darkroom.worker.engines import EnginePool
from darkroom.worker.wakeup import Wakeup

log = structlog.get_logger("darkroom.worker")

ENGINE_FAILED_MESSAGE = (
    "The image could not be generated because of a server error; "
    "it was tried {attempts} times. Please try again later."
)


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
        spec = self.catalog[batch[0].model]
        if len(batch) > spec.max_batch:  # the claim was sized for another model's batches
            await self.store.release(batch[spec.max_batch :], self.owner)
            batch = batch[: spec.max_batch]
        if len(batch) < spec.max_batch and spec.batch_wait_ms > 0:
            # Give a batch a moment to fill: one GPU call for many tasks costs little more.
            await asyncio.sleep(spec.batch_wait_ms / 1000)
            batch += await self.store.claim(
                self.owner,
                limit=spec.max_batch - len(batch),
                lease_seconds=self.lease_seconds,
                batch_key=batch[0].batch_key,
            )
        if self._stopping.is_set():
            await self.store.release(batch, self.owner)
            return []
        return batch

    async def _process(self, batch: list[Task]) -> None:
        model = batch[0].model
        heartbeat = asyncio.create_task(self._heartbeat([t.id for t in batch]))
        try:
            engine = await self.engines.get(model)
            started = time.perf_counter()
            outcomes = await engine.generate([_job(task) for task in batch], BatchMonitor())
            metrics.GENERATION_SECONDS.labels(model).observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.labels(model).observe(len(batch))
            for task, outcome in zip(batch, outcomes, strict=True):
                await self._finish(task, outcome)
        except Exception as exc:
            log.exception("engine failed", model=model, tasks=[t.id for t in batch])
            for task in batch:
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

    async def _heartbeat(self, task_ids: list[str]) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.store.extend_leases(self.owner, task_ids, self.lease_seconds)
            except Exception:
                log.exception("heartbeat failed", tasks=task_ids)


def _job(task: Task) -> Job:
    params = task.params
    return Job(
        task_id=task.id,
        prompt=task.generation_prompt,
        width=task.width,
        height=task.height,
        seed=int(params["seed"]),
        negative_prompt=params.get("negative_prompt"),
        images=tuple(params.get("images", ())),
        options={k: params[k] for k in ("steps", "guidance") if k in params},
    )
