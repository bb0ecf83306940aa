"""Where finished images, clips and tracks go, and the links that fetch them."""

from __future__ import annotations

from darkroom.config import Settings
from darkroom.errors import ConfigurationError
from darkroom.storage.base import CONTENT_TYPES, Storage, content_type_of, result_key

__all__ = ["CONTENT_TYPES", "Storage", "content_type_of", "open_storage", "result_key"]


def open_storage(settings: Settings) -> Storage:
    if settings.storage == "local":
        from darkroom.storage.local import LocalStorage

        return LocalStorage(settings.data_dir / "files", settings.base_url, settings.signing_secret)
    if settings.storage == "s3":
        from darkroom.storage.s3 import S3Storage

        return S3Storage(
            settings.s3_bucket,
            retention_hours=settings.retention_hours,
            endpoint_url=settings.s3_endpoint_url,
            public_url=settings.s3_public_url,
            addressing_style=settings.s3_addressing_style,
            lifecycle=settings.s3_lifecycle,
        )
    raise ConfigurationError(f"DARKROOM_STORAGE={settings.storage!r} is not a storage")
