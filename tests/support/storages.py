"""Each storage backend set up for tests that talk to the storage itself, with what a client
does with its links: a plain GET (no key, no headers). Local disk's links are fetched through
the API's own /files route (run in process); S3's from the SeaweedFS server of the session;
the in-memory storage's from its httpx transport."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from darkroom.api import files
from darkroom.storage import Storage
from darkroom.storage.local import LocalStorage
from darkroom.storage.s3 import S3Storage
from darkroom.testing import InMemoryStorage
from tests.support.services import S3Server

MEMORY, LOCAL, S3 = "memory", "local", "s3"
STORAGES = [MEMORY, LOCAL, S3]
FILES_BASE_URL = "http://testserver"  # where TestClient sends its requests


@dataclass
class StorageUnderTest:
    name: str
    storage: Storage
    get: Callable[[str], httpx.Response]
    """A plain GET of a link, as a browser or `curl` does it."""


def s3_storage(s3: S3Server, monkeypatch: pytest.MonkeyPatch, **options: Any) -> S3Storage:
    """An S3Storage on the session's server, in a bucket of its own (created by `prepare`)."""
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    options.setdefault("retention_hours", 48)
    return S3Storage(f"unit-{secrets.token_hex(4)}", endpoint_url=s3.endpoint_url, **options)


def files_route(storage: LocalStorage) -> TestClient:
    """The API's /files route serving this storage's links, in process."""
    app = FastAPI()
    app.include_router(files.router)
    app.state.darkroom = SimpleNamespace(storage=storage)  # all the route reads of the App
    return TestClient(app, base_url=FILES_BASE_URL)


@contextmanager
def storage_under_test(
    name: str, request: pytest.FixtureRequest, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[StorageUnderTest]:
    """The storage named, fresh; S3's server starts only when a test asks for it."""
    if name == MEMORY:
        memory = InMemoryStorage()
        with httpx.Client(transport=memory.transport()) as http:
            yield StorageUnderTest(name, memory, http.get)
    elif name == LOCAL:
        local = LocalStorage(folder / "files", FILES_BASE_URL, secrets.token_bytes(32))
        with files_route(local) as http:
            yield StorageUnderTest(name, local, http.get)
    elif name == S3:
        s3 = s3_storage(request.getfixturevalue("s3"), monkeypatch)
        with httpx.Client() as http:
            yield StorageUnderTest(name, s3, http.get)
    else:
        raise ValueError(f"no storage {name!r}")
