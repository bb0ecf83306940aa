"""A task's reference images, read before its batch is generated, so that engines get pictures
and never a URL (spec, "Outbound requests").

- a link to one of this server's own files (its storage's `key_of`) is read from storage, never
  fetched: the server may not be able to reach its own public address, and a private one would
  be refused;
- any other URL (http(s) or `data:`) goes through the one guarded `Fetcher`;
- a task's images are read concurrently, and all the worker's reads share one bound, so a batch
  of edits does not open dozens of connections at once; decoding runs in a thread.

An image that cannot be had fails its task alone, without retry (the same URL fails the same
way), with a message that names the image by its place in the request: "images[1] at
example.com answered HTTP 404."
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from PIL import Image

from darkroom.fetch import Fetcher, FetchFailed
from darkroom.storage import Storage

# Reference images a worker reads at once, across the tasks of its batches.
CONCURRENT_READS = 8


class ReferenceImages:
    def __init__(
        self, storage: Storage, fetcher: Fetcher, concurrency: int = CONCURRENT_READS
    ) -> None:
        self.storage = storage
        self.fetcher = fetcher
        self._bound = asyncio.Semaphore(concurrency)

    async def read(self, urls: Sequence[str]) -> tuple[Image.Image, ...]:
        """The pictures, in order, as RGB; raises FetchFailed naming the first that failed."""
        reads = [self._read_one(url, f"images[{index}]") for index, url in enumerate(urls)]
        return tuple(await asyncio.gather(*reads))

    async def _read_one(self, url: str, what: str) -> Image.Image:
        async with self._bound:
            key = self.storage.key_of(url)
            if key is None:
                image = await self.fetcher.fetch_image(url, what=what)
            else:
                image = await self._stored(key, what)
        return await asyncio.to_thread(_rgb, image)

    async def _stored(self, key: str, what: str) -> Image.Image:
        data = await self.storage.get(key)
        if data is None:
            raise FetchFailed(f"{what} is a link to a file of this server that is gone.")
        return await asyncio.to_thread(
            self.fetcher.open_image, data, what=f"{what} (a file of this server)"
        )


def _rgb(image: Image.Image) -> Image.Image:
    """What every engine can take: RGB, transparent parts on white."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "P", "PA"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, "white")
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
