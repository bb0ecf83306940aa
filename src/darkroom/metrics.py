"""Prometheus metrics. Counters are per process: scrape API nodes and worker processes alike
(the queue depth is read from the database at scrape time, so any node reports it)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TASKS_CREATED = Counter("darkroom_tasks_created", "Tasks accepted by /v1/media/create", ["model"])
TASKS_FINISHED = Counter("darkroom_tasks_finished", "Tasks that ended done", ["model"])
TASKS_FAILED = Counter("darkroom_tasks_failed", "Tasks that ended failed", ["model"])
QUEUE_DEPTH = Gauge("darkroom_queue_depth", "Tasks waiting for a worker (idle)")
TASKS_BY_STATUS = Gauge("darkroom_tasks", "Tasks in the database by status", ["status"])
GENERATION_SECONDS = Histogram(
    "darkroom_generation_seconds",
    "Wall time of one engine call (one batch)",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160),
)
BATCH_SIZE = Histogram(
    "darkroom_batch_size", "Tasks per engine call", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
