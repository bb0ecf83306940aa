"""The database: schema, async engine set-up and migrations."""

from darkroom.db.database import Connection, Database
from darkroom.db.schema import api_keys, idempotency, leaders, metadata, rate_buckets, tasks

__all__ = [
    "Connection",
    "Database",
    "api_keys",
    "idempotency",
    "leaders",
    "metadata",
    "rate_buckets",
    "tasks",
]
