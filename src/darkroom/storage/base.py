"""The storage interface: put bytes under a key, hand out a link that expires, delete."""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    async def prepare(self) -> None:
        """Readies the storage at start-up (creates the bucket, ...); safe to run repeatedly."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def url(self, key: str, expires_at: float) -> str:
        """An absolute link that a plain GET can fetch until `expires_at` (unix seconds)."""
        ...

    async def delete(self, keys: list[str]) -> None: ...


def result_key(task_id: str, retention_hours: float) -> str:
    """`exp48h/<id>_result.webp`: the folder names the retention, as the hosted service's do."""
    return f"exp{retention_hours:g}h/{task_id}_result.webp"
