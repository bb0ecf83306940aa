"""Picture plumbing for upstream engines: encode a task's reference images for a provider,
decode what a provider returned, pick the provider ratio nearest to the size asked for, and
bring the picture to exactly that size."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Sequence

from PIL import Image, UnidentifiedImageError

from darkroom.engines.base import GenerationError
from darkroom.engines.catalog import ModelSpec
from darkroom.engines.sizes import nearest_ratio


async def pngs(images: Sequence[Image.Image]) -> list[bytes]:
    """The reference images as PNG files (lossless; every provider reads PNG), encoded in a
    thread, off the event loop."""
    return await asyncio.to_thread(lambda: [_encoded(image, "PNG") for image in images])


async def jpegs(images: Sequence[Image.Image]) -> list[bytes]:
    """The reference images as JPEG files at high quality: a tenth of a photo's PNG, for an
    upstream whose request bodies are small (a Darkroom takes 1 MB by default)."""
    return await asyncio.to_thread(lambda: [_encoded(image, "JPEG") for image in images])


def _encoded(image: Image.Image, kind: str) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=kind, quality=92)
    return buffer.getvalue()


def decode(data: bytes, provider: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise GenerationError(f"{provider} returned data that is not an image.") from exc
    return image.convert("RGBA" if image.mode in ("RGBA", "LA", "P") else "RGB")


def provider_ratio(spec: ModelSpec, width: int, height: int, supported: Iterable[str]) -> str:
    """The ratio to ask the provider for: the task's own ratio when the provider has it (a
    4:3 task is 1280x896, nearer 3:2 than 4:3 by numbers alone), else the nearest it has."""
    supported = tuple(supported)
    named = next((r for r in spec.ratios if spec.size_for(r) == (width, height)), None)
    if named in supported:
        return named
    return nearest_ratio(width, height, supported)


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """`image` scaled to cover width x height and center-cropped to it: a 16:9 picture serves
    a 21:9 task by losing bands at top and bottom, never by being stretched."""
    if image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    scaled_w = max(width, round(image.width * scale))
    scaled_h = max(height, round(image.height * scale))
    image = image.resize((scaled_w, scaled_h), Image.Resampling.LANCZOS)
    left = (scaled_w - width) // 2
    top = (scaled_h - height) // 2
    return image.crop((left, top, left + width, top + height))
