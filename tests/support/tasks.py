"""Task records for store tests, on any database."""

from __future__ import annotations

import secrets
import time

from darkroom.keys import ApiKey
from darkroom.tasks import NewTask
from tests.support.services import PostgresServer


def async_url(server: PostgresServer) -> str:
    return server.new_database("unit").replace("postgresql://", "postgresql+asyncpg://")


def new_task(key: ApiKey, index: int, batch_key: str = "tiny-512:512x512") -> NewTask:
    return NewTask(
        id=secrets.token_hex(12),
        key_id=key.id,
        model=batch_key.split(":")[0],
        prompt=f"task {index}",
        ar=None,
        width=512,
        height=512,
        params={"seed": index, "steps": 4, "guidance": 1.5},
        batch_key=batch_key,
        created_at=int(time.time()),
        enqueued_at=time.time() + index * 1e-6,
        max_attempts=3,
    )
