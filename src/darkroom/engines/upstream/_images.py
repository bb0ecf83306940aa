"""Picture plumbing for upstream engines: encode a task's reference images for a provider,
decode what a provider returned (under a pixel cap, in a thread), pick the provider ratio
nearest to the size asked for, and bring the picture to exactly that size."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Sequence

from PIL import Image

from darkroom.engines.catalog import ModelSpec
from darkroom.engines.sizes import nearest_ratio
from darkroom.fetch import Fetcher, FetchLimits

# The most pixels a provider's picture may have (about 6300 x 6300: past any model's output);
# relay results are fetched under the same cap.
RESULT_PIXELS = 40_000_000
_RESULTS = Fetcher(limits=FetchLimits(max_pixels=RESULT_PIXELS))  # its open_image only


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


async def picture(data: bytes, provider: str, width: int, height: int) -> Image.Image:
    """What `provider` returned, as a picture of exactly width x height. Decoded in a thread,
    off the event loop, and only once its header's pixel count passed the guarded fetcher's
    cap (the check of reference images and relay results): a small file can claim a huge
    canvas. A file past the cap, or not an image, fails the task once (FetchFailed is a
    GenerationError): the same bytes would fail the same way."""
    what = f"The image {provider} returned"
    return await asyncio.to_thread(_fitted, data, what, width, height)


def _fitted(data: bytes, what: str, width: int, height: int) -> Image.Image:
    return fit(rgb_or_rgba(_RESULTS.open_image(data, what=what)), width, height)


def rgb_or_rgba(image: Image.Image) -> Image.Image:
    """RGBA for a picture that may have transparency, RGB for the rest."""
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
