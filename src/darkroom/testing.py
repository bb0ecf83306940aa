"""In-memory parts for unit tests, ours and users': an engine built from a function and a
storage that keeps its files in a dict. With them a real `Worker` runs a real `TaskStore` (on
SQLite in a temporary folder) in one process, in milliseconds, without torch, GPUs, servers or
network, as procrastinate's `InMemoryConnector` and httpx's `MockTransport` let their users
test without a database or a network.

    from darkroom.testing import InMemoryStorage, function_model

    def paint(job):  # a Job in, a PIL image out; raise GenerationError to fail that task
        return Image.new("RGB", (job.width, job.height), "teal")

    catalog = Catalog({"fake": function_model("fake", paint, max_batch=4)})
    storage = InMemoryStorage()
    worker = Worker(store, storage, catalog, EnginePool(catalog, tmp_path), retention_hours=1)

The engine is reached by the catalog like any other (`engine = "darkroom.testing:open_engine"`,
the function in the entry's options), so the pool loads it as it loads real ones, and
`await pool.get("fake")` is the instance the worker uses: it records every batch it is given.
In a settings file the same entry, with no function, serves `solid_image`s: a whole server
without a model. The storage signs its links as local storage does, and its `transport()`
serves them to an httpx client: a test fetches a link with a plain GET.

Only the names in `__all__` are public here: other imports are modules or typing-only, so
that tests/unit/test_exported_members.py can hold this module to its list, as httpx does.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
import typing
import urllib.parse

import httpx
from PIL import Image

from darkroom import errors
from darkroom.engines import base, catalog
from darkroom.storage import local, signing

if typing.TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from darkroom.engines.base import BatchMonitor, Job, Outcome
    from darkroom.engines.catalog import ModelSpec

__all__ = [
    "ENGINE",
    "FunctionEngine",
    "InMemoryStorage",
    "RecordedBatch",
    "StoredFile",
    "function_model",
    "open_engine",
    "solid_image",
]

# What a catalog entry names to be served by a FunctionEngine (see `function_model`).
ENGINE = f"{__name__}:open_engine"


# -- the engine ---------------------------------------------------------------------------------


def solid_image(job: Job) -> Image.Image:
    """An image of the job's size in one colour drawn from its seed: equal seeds, equal images."""
    seed = job.seed
    colour = (seed * 67 % 256, seed * 131 % 256, seed * 199 % 256)
    return Image.new("RGB", (job.width, job.height), colour)


@dataclasses.dataclass(frozen=True)
class RecordedBatch:
    """One `generate` call a FunctionEngine was given: its jobs, in order, and its monitor
    (where the worker marks canceled tasks and the engine reports progress)."""

    jobs: tuple[Job, ...]
    monitor: BatchMonitor

    @property
    def task_ids(self) -> list[str]:
        return [job.task_id for job in self.jobs]


class FunctionEngine(base.Engine):
    """An engine whose every image is `fn(job)`; `fn` raises `GenerationError` to fail that job
    alone, any other exception to fail (and retry) the whole batch.

    It keeps the local engines' rules for a batch's monitor: a job canceled before its turn is
    answered `TaskCanceled` without calling `fn`, one canceled while `fn` ran is answered
    `TaskCanceled` too, and progress moves by one job's share after each job. `fn` runs in a
    thread, as pipelines do, so it may block (on an event a test sets, say)."""

    def __init__(self, spec: ModelSpec, fn: Callable[[Job], Image.Image] = solid_image) -> None:
        self.spec = spec
        self.fn = fn
        self.batches: list[RecordedBatch] = []
        self.loaded = False
        self.closed = False

    @property
    def batch_sizes(self) -> list[int]:
        return [len(batch.jobs) for batch in self.batches]

    async def load(self) -> None:
        """Nothing to load; kept so the engine answers what a pool may ask of local engines."""
        self.loaded = True

    def memory_bytes(self) -> int:
        return 0

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        self.batches.append(RecordedBatch(tuple(jobs), monitor))
        return await asyncio.to_thread(self._run, jobs, monitor)

    async def close(self) -> None:
        self.closed = True

    def _run(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for done, job in enumerate(jobs, start=1):
            outcomes.append(self._outcome(job, monitor))
            monitor.report(done / len(jobs))
        return outcomes

    def _outcome(self, job: Job, monitor: BatchMonitor) -> Outcome:
        if monitor.is_canceled(job.task_id):
            return errors.TaskCanceled()
        try:
            image = self.fn(job)
        except errors.GenerationError as failure:
            return failure
        return errors.TaskCanceled() if monitor.is_canceled(job.task_id) else image


def function_model(
    model_id: str,
    fn: Callable[[Job], Image.Image] = solid_image,
    **spec_fields: typing.Any,
) -> ModelSpec:
    """A catalog entry served by `FunctionEngine(spec, fn)`; `spec_fields` are the ModelSpec's
    other fields (`max_batch`, `batch_wait_ms`, `native_size`, ...)."""
    return catalog.ModelSpec(id=model_id, engine=ENGINE, options={"function": fn}, **spec_fields)


def open_engine(spec: ModelSpec, data_dir: Path) -> FunctionEngine:
    """The engine factory `ENGINE` names: the function comes from the entry's options."""
    fn = spec.options.get("function", solid_image)
    if not callable(fn):
        raise errors.CatalogError(f'model "{spec.id}": option "function" is not callable')
    return FunctionEngine(spec, fn)


# -- the storage --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StoredFile:
    data: bytes
    content_type: str


class InMemoryStorage:
    """A `Storage` in a dict. Its links are signed and expire as local storage's do
    (`<base_url>/<key>?expires=..&sig=..`), and `transport()` serves them: 200 with the bytes,
    403 for a link that is expired or tampered with, 404 once the file is deleted."""

    def __init__(self, base_url: str = "http://storage.test", secret: bytes | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.secret = secret or secrets.token_bytes(32)
        self.files: dict[str, StoredFile] = {}
        self.prepared = 0  # how many times `prepare` ran

    async def prepare(self) -> None:
        self.prepared += 1

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        self.files[key] = StoredFile(bytes(data), content_type)

    def url(self, key: str, expires_at: float) -> str:
        expires = int(expires_at)
        query = {"expires": expires, "sig": signing.sign(self.secret, key, expires)}
        return f"{self.base_url}/{urllib.parse.quote(key)}?{urllib.parse.urlencode(query)}"

    async def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.files.pop(key, None)

    async def get(self, key: str) -> bytes | None:
        stored = self.files.get(key)
        return stored.data if stored is not None else None

    def key_of(self, url: str) -> str | None:
        return local.signed_key(url, f"{self.base_url}/", self.secret)

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that answers GETs of this storage's links, for
        `httpx.Client(transport=storage.transport())` or as a client's mount."""
        return httpx.MockTransport(self.handle_request)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """The answer to a GET of a link, as a file server would give it."""
        key = self._key_of(str(request.url.copy_with(query=None)))
        if request.method != "GET" or key is None:
            return httpx.Response(404, json={"detail": "Not Found"})
        params = request.url.params
        refused = signing.verify(
            self.secret, key, params.get("expires", ""), params.get("sig", ""), now=time.time()
        )
        if refused:
            return httpx.Response(403, json={"detail": f"This link is {refused}."})
        stored = self.files.get(key)
        if stored is None:
            return httpx.Response(404, json={"detail": "This file no longer exists."})
        headers = {"content-type": stored.content_type}
        return httpx.Response(200, content=stored.data, headers=headers)

    def _key_of(self, link: str) -> str | None:
        prefix = f"{self.base_url}/"
        return urllib.parse.unquote(link[len(prefix) :]) if link.startswith(prefix) else None
