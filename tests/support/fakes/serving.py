"""A real `darkroom serve` process for the upstream-engine tests, with a catalog written to its
data folder and extra environment (the provider credentials a catalog entry names)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from PIL import Image

from tests.support.servers import Darkroom


@contextmanager
def serving(
    data_dir: Path, catalog: str, env: dict[str, str] | None = None, *serve_args: str
) -> Iterator[Darkroom]:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "catalog.toml"
    config.write_text(catalog)
    darkroom = Darkroom(data_dir, config)
    darkroom.env.update(env or {})
    try:
        darkroom.start_server(*serve_args)
        yield darkroom
    finally:
        darkroom.stop()


def client_for(darkroom: Darkroom, key: str | None = None) -> httpx.Client:
    key = key or darkroom.create_key("--name", "tests")
    return httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}, timeout=30)


def download(url: str) -> Image.Image:
    """The result a done task links to, fetched as a client would: a plain GET."""
    response = httpx.get(url, timeout=30)
    response.raise_for_status()
    image = Image.open(io.BytesIO(response.content))
    assert image.format == "WEBP"
    return image
