"""Where finished images go, and the links that fetch them."""

from __future__ import annotations

from darkroom.config import Settings
from darkroom.storage.base import Storage, result_key

__all__ = ["Storage", "open_storage", "result_key"]


def open_storage(settings: Settings) -> Storage:
    if settings.storage == "local":
        from darkroom.storage.local import LocalStorage

        return LocalStorage(settings.data_dir / "files", settings.base_url, settings.signing_secret)
    raise ValueError(f"DARKROOM_STORAGE={settings.storage!r} is not available yet")
