"""The database: schema, async engine set-up and migrations."""

from darkroom.db.database import Database
from darkroom.db.schema import api_keys, metadata, tasks

__all__ = ["Database", "api_keys", "metadata", "tasks"]
