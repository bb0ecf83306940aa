"""The sweep, run by the elected maintenance service on one node (maintenance.py):
- result files past the retention period are deleted; their task records stay a while longer
  (and still answer /result, without a link);
- task records are deleted, in batches, once they ended more than the retention period plus
  DARKROOM_RECORD_RETENTION_DAYS ago (30 by default), with their idempotency records, so a key
  that creates and cancels without end cannot grow the database without bound;
- idempotency records older than a day are deleted."""

from __future__ import annotations

import time

import structlog

from darkroom.storage import Storage
from darkroom.tasks import TaskStore
from darkroom.tasks.admission import IDEMPOTENCY_SECONDS

log = structlog.get_logger("darkroom.retention")


async def sweep_once(
    store: TaskStore,
    storage: Storage,
    retention_seconds: float,
    record_retention_seconds: float | None = None,
) -> int:
    """Deletes every expired result, then the records past their own retention; returns how
    many results."""
    swept = await _sweep_results(store, storage, retention_seconds)
    if record_retention_seconds is not None:
        await _sweep_records(store, retention_seconds + record_retention_seconds)
    return swept


async def _sweep_records(store: TaskStore, age: float) -> None:
    now = time.time()
    deleted = 0
    while batch := await store.delete_finished(now - age):
        deleted += batch
    forgotten = await store.forget_idempotency(now - IDEMPOTENCY_SECONDS)
    if deleted or forgotten:
        log.info("old records deleted", tasks=deleted, idempotency=forgotten)


async def _sweep_results(store: TaskStore, storage: Storage, retention_seconds: float) -> int:
    """Deletes every expired result; returns how many."""
    swept = 0
    while expired := await store.expired_results(time.time() - retention_seconds):
        # Every file of each task: an audio model's tracks, not only the first.
        keys = [key for task in expired for key in task.stored_keys]
        await storage.delete(keys)
        await store.mark_purged([task.id for task in expired])
        swept += len(expired)
    if swept:
        log.info("expired results deleted", count=swept)
    return swept
