"""Image encoding for stored results."""

from __future__ import annotations

import io

from PIL import Image

WEBP_QUALITY = 85


def encode_webp(image: Image.Image, quality: int = WEBP_QUALITY) -> bytes:
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="WEBP", quality=quality, method=4)
    return buffer.getvalue()
