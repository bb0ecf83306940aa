"""The sweep: deletes result files past the retention period; task records stay (and still
answer /result). The elected maintenance service runs it on one node (maintenance.py)."""

from __future__ import annotations

import time

import structlog

from darkroom.storage import Storage
from darkroom.tasks import TaskStore

log = structlog.get_logger("darkroom.retention")


async def sweep_once(store: TaskStore, storage: Storage, retention_seconds: float) -> int:
    """Deletes every expired result; returns how many."""
    swept = 0
    while expired := await store.expired_results(time.time() - retention_seconds):
        keys = [task.result_key for task in expired if task.result_key]
        await storage.delete(keys)
        await store.mark_purged([task.id for task in expired])
        swept += len(expired)
    if swept:
        log.info("expired results deleted", count=swept)
    return swept
