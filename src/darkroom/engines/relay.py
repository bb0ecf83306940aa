"""The `relay` engine: forwards tasks to any server that speaks this media API (the hosted
service of the seed, or another Darkroom) and keeps the finished image in Darkroom's own
storage, so links live as long as this server's retention says.

Catalog options: `base_url` (required), `api_key_env` (the variable holding the upstream key,
default DARKROOM_RELAY_API_KEY), `upstream_model` (default: the same id), `poll_seconds` (first
wait between polls of a task, at least 1), `poll_max_seconds` (the backoff's ceiling),
`task_timeout_seconds` (how long to wait for the upstream to finish), `aspect_ratios` (those
the upstream model takes, when fewer than ours), and the common limits of upstream.py.

Each job: create the upstream task (with retries), wait for it, download the result. One
poller coroutine serves every task this engine is waiting for: it polls each task when due,
backing off from `poll_seconds` to `poll_max_seconds` while it runs, and treats a failed
poll as one of the task's `attempts`, so an upstream that goes away fails the task with a
clear message instead of leaving it processing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from PIL import Image

from darkroom.engines import _images
from darkroom.engines.base import BatchMonitor, GenerationError, Job, Outcome
from darkroom.engines.catalog import CatalogError, ModelSpec
from darkroom.engines.sizes import RATIOS
from darkroom.engines.upstream import (
    CANCELED,
    CLIENT_FOOTPRINT_BYTES,
    Upstream,
    UpstreamFailure,
    UpstreamLimits,
    connection_failure,
    each_job,
    http_failure,
    scrub,
)

log = structlog.get_logger("darkroom.engines.relay")
PROVIDER = "The upstream image service"
DEFAULT_KEY_ENV = "DARKROOM_RELAY_API_KEY"
MIN_POLL_SECONDS = 1.0  # never poll one task more often than this
# Media API codes that may pass: internal error, overloaded.
_PASSING_CODES = {1, 6}
_OPERATOR_CODES = {2: "refused this server's key", 5: "has no balance left", 7: "refused the model"}


def open_engine(spec: ModelSpec, data_dir: Path) -> RelayEngine:
    return RelayEngine(spec)


@dataclass(eq=False)
class _Waiting:
    """One upstream task this engine waits for."""

    job: Job
    upstream_id: str
    monitor: BatchMonitor
    batch_progress: dict[str, float]
    result: asyncio.Future[str]  # the result's URL
    due: float
    interval: float
    deadline: float
    failures: int = 0


class RelayEngine:
    def __init__(self, spec: ModelSpec) -> None:
        options = spec.options
        self.spec = spec
        if not options.get("base_url"):
            raise CatalogError(f'model "{spec.id}": the relay engine needs a base_url')
        self.base_url = str(options["base_url"]).rstrip("/")
        self.model = str(options.get("upstream_model", spec.id))
        self.ratios = tuple(options.get("aspect_ratios", RATIOS))
        self.poll_seconds = max(MIN_POLL_SECONDS, float(options.get("poll_seconds", 2.0)))
        self.poll_max_seconds = max(self.poll_seconds, float(options.get("poll_max_seconds", 10)))
        self.task_timeout = float(options.get("task_timeout_seconds", 900))
        key_env = str(options.get("api_key_env", DEFAULT_KEY_ENV))
        self._key = os.environ.get(key_env, "")
        if not self._key:
            raise CatalogError(f'model "{spec.id}": set {key_env} to the upstream API key')
        self.upstream = Upstream(PROVIDER, UpstreamLimits.from_options(options))
        # No default headers: the key goes to the API only, never to the storage host that a
        # result link points at.
        self._http = httpx.AsyncClient(timeout=self.upstream.limits.timeout_seconds)
        self._waiting: dict[str, _Waiting] = {}
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    def memory_bytes(self) -> int:
        return CLIENT_FOOTPRINT_BYTES

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        batch_progress = {job.task_id: 0.0 for job in jobs}
        return await each_job(jobs, lambda job: self._relay(job, monitor, batch_progress))

    async def close(self) -> None:
        # Cancels already asked for upstream are sent before the connection goes.
        await asyncio.gather(*self._background, return_exceptions=True)
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self._http.aclose()

    # -- one job -------------------------------------------------------------------------

    async def _relay(
        self, job: Job, monitor: BatchMonitor, batch_progress: dict[str, float]
    ) -> Image.Image:
        upstream_id = await self.upstream.call(
            lambda: self._create(job), canceled=lambda: monitor.is_canceled(job.task_id)
        )
        log.info("relayed", task_id=job.task_id, upstream_id=upstream_id)
        url = await self._wait(job, upstream_id, monitor, batch_progress)
        data = await self.upstream.call(lambda: self._download(url))
        return _images.fit(_images.decode(data, PROVIDER), job.width, job.height)

    async def _create(self, job: Job) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": job.prompt,
            "ar": _images.provider_ratio(self.spec, job.width, job.height, self.ratios),
            "seed": job.seed,  # Darkroom honours it; the hosted service ignores unknown fields
        }
        if job.negative_prompt:
            body["negative_prompt"] = job.negative_prompt
        if job.images:
            body["images"] = list(job.images)
        task = await self._api("/v1/media/create", body)
        if not isinstance(task.get("id"), str):
            raise UpstreamFailure(f"{PROVIDER} answered without a task id", retryable=True)
        return task["id"]

    async def _api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs to the media API and returns its answer, or raises what went wrong."""
        try:
            response = await self._http.post(
                f"{self.base_url}{path}", json=body, headers={"Authorization": self._key}
            )
        except httpx.TransportError as exc:
            raise connection_failure(PROVIDER, exc) from None
        if response.status_code != 200:
            raise http_failure(PROVIDER, response.status_code, None, [self._key])
        try:
            answer = response.json()
        except ValueError:
            raise UpstreamFailure(f"{PROVIDER} answered with no JSON", retryable=True) from None
        code = answer.get("code", 0) if isinstance(answer, dict) else None
        if code != 0:
            raise self._api_failure(
                code, answer.get("message") if isinstance(answer, dict) else None
            )
        return answer

    def _api_failure(self, code: Any, message: Any) -> Exception:
        said = scrub(message, [self._key]) if isinstance(message, str) else "no reason given"
        if code in (1001, 1002):
            return GenerationError(f"{PROVIDER} refused the request: {said} (code {code}).")
        if code in _PASSING_CODES:
            return UpstreamFailure(
                f"{PROVIDER} is busy or failing (code {code}: {said})", retryable=True
            )
        if code in _OPERATOR_CODES:
            return UpstreamFailure(
                f"{PROVIDER} {_OPERATOR_CODES[code]} (code {code}); please tell the operator "
                "of this service",
                retryable=False,
            )
        return UpstreamFailure(
            f"{PROVIDER} refused the request (code {code}: {said})", retryable=False
        )

    async def _download(self, url: str) -> bytes:
        try:
            response = await self._http.get(url, follow_redirects=True)
        except httpx.TransportError as exc:
            raise connection_failure(PROVIDER, exc) from None
        if response.status_code != 200:
            raise http_failure(f"{PROVIDER}'s result link", response.status_code, None, [])
        return response.content

    # -- waiting: one poller for every task ------------------------------------------------

    async def _wait(
        self, job: Job, upstream_id: str, monitor: BatchMonitor, batch_progress: dict[str, float]
    ) -> str:
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = _Waiting(
            job=job,
            upstream_id=upstream_id,
            monitor=monitor,
            batch_progress=batch_progress,
            result=loop.create_future(),
            due=now + self.poll_seconds,
            interval=self.poll_seconds,
            deadline=now + self.task_timeout,
        )
        self._waiting[upstream_id] = waiting
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever(), name="relay-poller")
        try:
            return await waiting.result
        finally:
            self._waiting.pop(upstream_id, None)

    async def _poll_forever(self) -> None:
        try:
            await self._poll_rounds()
        except Exception as exc:  # a bug here must not leave tasks waiting forever
            log.exception("relay poller failed")
            for waiting in self._waiting.values():
                if not waiting.result.done():
                    waiting.result.set_exception(exc)

    async def _poll_rounds(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            now = loop.time()
            rounds = [self._poll(w) for w in list(self._waiting.values()) if w.due <= now]
            rounds += [self._check(w, now) for w in list(self._waiting.values()) if w.due > now]
            await asyncio.gather(*rounds)
            if not self._waiting:
                break
            # Wake for the next poll due, and at least each second to notice cancels.
            next_due = min(w.due for w in self._waiting.values())
            await asyncio.sleep(min(max(next_due - loop.time(), 0.0), MIN_POLL_SECONDS))

    async def _check(self, waiting: _Waiting, now: float) -> None:
        """Settles a task that was canceled, or that waited too long."""
        if waiting.result.done():
            return
        if waiting.monitor.is_canceled(waiting.job.task_id):
            waiting.result.set_exception(GenerationError(CANCELED))
            self._in_background(self._cancel_upstream(waiting.upstream_id))
        elif now > waiting.deadline:
            waiting.result.set_exception(
                GenerationError(
                    f"{PROVIDER} did not finish the image in {self.task_timeout:g} s; "
                    "please try again later."
                )
            )

    async def _poll(self, waiting: _Waiting) -> None:
        loop = asyncio.get_running_loop()
        await self._check(waiting, loop.time())
        if waiting.result.done():
            return
        try:
            task = await self.upstream.once(
                lambda: self._api("/v1/media/result", {"task_id": waiting.upstream_id})
            )
        except UpstreamFailure as exc:
            self._poll_failed(waiting, exc, loop.time())
            return
        except GenerationError as exc:
            if not waiting.result.done():
                waiting.result.set_exception(exc)
            return
        waiting.failures = 0
        self._poll_answered(waiting, task, loop.time())

    def _poll_answered(self, waiting: _Waiting, task: dict[str, Any], now: float) -> None:
        status = task.get("status")
        if waiting.result.done():
            return
        if status == "done" and isinstance(task.get("url"), str):
            waiting.result.set_result(task["url"])
        elif status in ("failed", "error"):
            said = task.get("message")
            reason = scrub(said, [self._key]) if isinstance(said, str) else "no reason given"
            waiting.result.set_exception(
                GenerationError(f"{PROVIDER} could not make the image: {reason}")
            )
        else:
            self._report_progress(waiting, task.get("progress"))
            waiting.interval = min(waiting.interval * 1.5, self.poll_max_seconds)
            waiting.due = now + waiting.interval

    def _poll_failed(self, waiting: _Waiting, failure: UpstreamFailure, now: float) -> None:
        waiting.failures += 1
        attempts = self.upstream.limits.attempts
        if not failure.retryable or waiting.failures >= attempts:
            tried = f"; it was tried {waiting.failures} times" if failure.retryable else ""
            if not waiting.result.done():
                waiting.result.set_exception(
                    GenerationError(f"{failure.message}{tried}. Please try again later.")
                )
            return
        backoff = self.poll_seconds * 2 ** (waiting.failures - 1)
        waiting.due = now + min(backoff, self.poll_max_seconds) * random.uniform(1.0, 1.5)
        log.info("upstream poll failed", task_id=waiting.job.task_id, error=failure.message)

    @staticmethod
    def _report_progress(waiting: _Waiting, progress: Any) -> None:
        if not isinstance(progress, int | float) or isinstance(progress, bool):
            return
        # Darkroom sends 0 to 100; a fraction is taken as it is.
        fraction = progress / 100 if progress > 1 else float(progress)
        waiting.batch_progress[waiting.job.task_id] = min(max(fraction, 0.0), 1.0)
        shares = waiting.batch_progress.values()
        waiting.monitor.report(sum(shares) / len(shares))

    async def _cancel_upstream(self, upstream_id: str) -> None:
        """Asks the upstream to stop too; an upstream without the cancel extension says no."""
        with contextlib.suppress(UpstreamFailure, GenerationError):
            await self.upstream.once(
                lambda: self._api("/v1/media/cancel", {"task_id": upstream_id})
            )

    def _in_background(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
