"""Local-disk storage: files under one folder, fetched through the API's /files route with
signed, expiring links."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from darkroom.storage.signing import sign, verify


class LocalStorage:
    def __init__(self, root: Path, base_url: str, secret: bytes) -> None:
        self.root = root.resolve()
        self.base_url = base_url.rstrip("/")
        self.secret = secret

    def path(self, key: str) -> Path | None:
        """The file for a key, or None for a key that would leave the storage folder."""
        path = (self.root / key).resolve()
        return path if path.is_relative_to(self.root) and path != self.root else None

    async def prepare(self) -> None:
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, key, data)

    def _write(self, key: str, data: bytes) -> None:
        path = self.path(key)
        if path is None:
            raise ValueError(f"storage key outside the storage folder: {key}")
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}.part")
        # 0600 from creation on: only this service reads results, through signed links.
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(fd, 0o600)  # a stale draft of the same pid keeps its old mode
                file.write(data)
            draft.replace(path)  # readers see the whole file or none of it
        except BaseException:
            # A full disk fails the write (or its flush at close): no half-written draft may
            # stay behind to take up the space that returns.
            with contextlib.suppress(OSError):
                draft.unlink()
            raise

    def url(self, key: str, expires_at: float) -> str:
        expires = int(expires_at)
        query = urlencode({"expires": expires, "sig": sign(self.secret, key, expires)})
        return f"{self.base_url}/files/{quote(key)}?{query}"

    async def get(self, key: str) -> bytes | None:
        path = self.path(key)
        if path is None:
            return None
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            return None

    def key_of(self, url: str) -> str | None:
        return signed_key(url, f"{self.base_url}/files/", self.secret)

    async def delete(self, keys: list[str]) -> None:
        await asyncio.to_thread(self._unlink, keys)

    def _unlink(self, keys: list[str]) -> None:
        for key in keys:
            path = self.path(key)
            if path is not None:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()


def signed_key(url: str, prefix: str, secret: bytes) -> str | None:
    """The key of a link `<prefix><key>?expires=..&sig=..` whose signature holds."""
    if not url.startswith(prefix):
        return None
    parts = urlsplit(url)
    key = unquote(parts.path[len(urlsplit(prefix).path) :])
    query = parse_qs(parts.query)
    expires, signature = query.get("expires", [""])[0], query.get("sig", [""])[0]
    return key if key and not verify(secret, key, expires, signature) else None
