"""The database: schema, async engine set-up and migrations."""

from darkroom.db.database import Connection, Database
from darkroom.db.schema import api_keys, leaders, metadata, tasks

__all__ = ["Connection", "Database", "api_keys", "leaders", "metadata", "tasks"]
