"""The storage interface: put bytes under a key, hand out a link that expires, delete; read a
file back, and tell one of its own links from any other URL."""

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

    async def get(self, key: str) -> bytes | None:
        """The file's bytes, or None when there is no such file (any more)."""
        ...

    def key_of(self, url: str) -> str | None:
        """The key, when `url` is a link this storage handed out and it still holds (a client
        naming one of this server's own files, which is read here rather than fetched)."""
        ...


# A result's container by its extension: what a link to it is served as.
CONTENT_TYPES = {"webp": "image/webp", "mp4": "video/mp4", "mp3": "audio/mpeg"}


def result_key(
    task_id: str,
    retention_hours: float,
    attempt: int = 1,
    *,
    extension: str = "webp",
    index: int = 0,
) -> str:
    """`exp48h/<id>_result.webp`: the folder names the retention, as the hosted service's do.
    Later attempts get `<id>_<attempt>_result.webp`, so that two attempts of one task (one
    whose worker lost its lease and one that took over) never write the same object. A task's
    later files (an audio model's second track, ...) are `<id>_result_2.mp3`, ..."""
    name = task_id if attempt <= 1 else f"{task_id}_{attempt}"
    suffix = f"_{index + 1}" if index else ""
    return f"exp{retention_hours:g}h/{name}_result{suffix}.{extension}"


def content_type_of(key: str) -> str:
    """The content type a stored result is served with, from its key's extension."""
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1].lower(), "application/octet-stream")
