"""The `relay` engine: forwards tasks to any server that speaks this media API (the hosted
service of the seed, or another Darkroom) and keeps the finished image in Darkroom's own
storage, so links live as long as this server's retention says.

Catalog options: `base_url` (required), `api_key_env` (the variable holding the upstream key,
default DARKROOM_RELAY_API_KEY), `upstream_model` (default: the same id), `aspect_ratios`
(those the upstream model takes, when fewer than ours), the polling options of _poller.py
(`poll_seconds`, `poll_max_seconds`, `task_timeout_seconds`) and the common limits of
calls.py (upstream/options.py checks them all).

Each job: create the upstream task (with retries), wait for it (one poller serves every task
of the engine), download the result. A task's reference images go upstream as
`data:image/jpeg;base64,` URLs in `images`: the upstream could not reach links to this server's
own files (private, or signed for this server), and the images were read here already; JPEG at
quality 92, as the upstream's request bodies may be small.

A video model's MP4 (its `url`) and an audio model's tracks (the audio shape's `result`, each
`audio_url`) are downloaded the same way, checked to be media PyAV can read (a track's duration
is read from its file), and stored by the worker in Darkroom's storage, each track its own
file and link. Audio tasks go upstream without `ar`.

For a video or audio model `max_in_flight` (default 2) is the number of upstream tasks
outstanding at once, created and not ended, as providers cap concurrent video and music jobs
(calls.py, `job_slot`): a task beyond it waits here for a place, its lease kept by the worker's
heartbeat and its cancel honoured, and is created upstream once one frees. For an image model
it stays the number of requests in flight.

Requests, answers and their error codes are Darkroom's own client's (darkroom/client), with
its retries off: this engine's limits, timeouts and retries are calls.py's, like every
upstream engine's, and only its answers decide what may be retried.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import structlog
from PIL import Image

from darkroom.client import AsyncClient, RetryPolicy
from darkroom.client.errors import ConnectionFailed, DownloadError, UnexpectedResponse
from darkroom.client.models import Task
from darkroom.engines.base import BatchMonitor, Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import CatalogError, ModelSpec
from darkroom.engines.encoding import duration_of
from darkroom.engines.media import EncodedVideo, Media, Track, Tracks
from darkroom.engines.upstream import _images
from darkroom.engines.upstream._poller import Poller, PollTiming
from darkroom.engines.upstream.calls import (
    Upstream,
    UpstreamFailure,
    connection_failure,
    each_job,
    http_failure,
    scrub,
)
from darkroom.engines.upstream.options import RelayOptions
from darkroom.errors import ApiError, Code, DarkroomError
from darkroom.fetch import Fetched, Fetcher, FetchLimits, host_for_message

log = structlog.get_logger("darkroom.engines.relay")
T = TypeVar("T")
PROVIDER = "The upstream media service"
RESULT_LINK = f"{PROVIDER}'s result link"
# Media API codes that may pass (an internal error, an overloaded server), codes only this
# server's operator can act on, and the refusals a user can act on.
_PASSING_CODES = {Code.INTERNAL, Code.OVERLOADED}
_OPERATOR_CODES = {
    Code.BAD_KEY: "refused this server's key",
    Code.NO_BALANCE: "has no balance left",
    Code.MODEL_NOT_ALLOWED: "refused the model",
}
_REFUSAL_CODES = {Code.SENSITIVE_CONTENT, Code.UNSAFE_PROMPT}
# A result is read through the guarded fetcher: streamed and abandoned past max_bytes, its
# pixels counted from the header before decoding.
MAX_UPSTREAM_ID = 200  # characters; an id is logged, polled with and kept while it runs
RESULT_LIMITS = FetchLimits(max_bytes=64 * 1024 * 1024, max_pixels=_images.RESULT_PIXELS)
MEDIA_MAX_BYTES = 512 * 1024 * 1024  # a minute of 1080p H.264 is well under this


def open_engine(spec: ModelSpec, data_dir: Path) -> RelayEngine:
    return RelayEngine(spec)


class UpstreamClient(AsyncClient):
    """Darkroom's own client, for the API calls only: result links are fetched by the guarded
    fetcher (a plain GET, so the key is never sent to the storage host a link points at)."""


class RelayEngine(Engine):
    def __init__(self, spec: ModelSpec) -> None:
        options = RelayOptions.of(spec)
        self.spec = spec
        self.model = options.upstream_model or spec.id
        self.ratios = options.aspect_ratios
        self._key = os.environ.get(options.api_key_env, "")
        if not self._key:
            raise CatalogError(
                f'model "{spec.id}": set {options.api_key_env} to the upstream API key'
            )
        self.upstream = Upstream(PROVIDER, options, kind=spec.kind)
        self._client = UpstreamClient(
            options.base_url,
            self._key,
            timeout=options.timeout_seconds,
            retry=RetryPolicy(attempts=1),  # Upstream.call owns the retries
        )
        # Result links: public addresses only (checked after DNS and each redirect), except
        # the origin of the configured base_url; DARKROOM_ALLOW_PRIVATE_URLS=1 lifts the rule.
        self._fetcher = Fetcher(
            limits=replace(RESULT_LIMITS, timeout_seconds=options.timeout_seconds)
        ).trusting([options.base_url])
        media_limits = replace(
            RESULT_LIMITS, max_bytes=MEDIA_MAX_BYTES, timeout_seconds=options.timeout_seconds
        )
        self._media_fetcher = Fetcher(limits=media_limits).trusting([options.base_url])
        self._poller = Poller(
            self._fetch,
            self._cancel,
            PollTiming.from_options(options),
            provider=PROVIDER,
            secrets=[self._key],
            what=spec.kind,
        )

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        batch_progress = {job.task_id: 0.0 for job in jobs}
        return await each_job(jobs, lambda job: self._relay(job, monitor, batch_progress))

    async def close(self) -> None:
        await self._poller.close()
        await self._client.close()

    # -- one job -------------------------------------------------------------------------

    async def _relay(
        self, job: Job, monitor: BatchMonitor, batch_progress: dict[str, float]
    ) -> Media:
        images = [_data_url(jpeg) for jpeg in await _images.jpegs(job.images)]

        def canceled() -> bool:
            return monitor.is_canceled(job.task_id)

        async with self.upstream.job_slot(canceled):
            task = await self.upstream.call(
                lambda: self._asked(self._create(job, images)), canceled=canceled
            )
            _check_upstream_id(task.id)
            log.info("relayed", task_id=job.task_id, upstream_id=task.id)
            done = await self._poller.wait(job, task.id, monitor, batch_progress)
        # Every refusal and failure of the fetcher (FetchFailed, naming only the host) fails
        # the task once: a private address, an oversized body or a picture past the pixel
        # cap will not change on a second try.
        if self.spec.kind == "audio":
            return Tracks(tuple([await self._track(url, t.title) for url, t in _tracks(done)]))
        if self.spec.kind == "video":
            fetched = await self._media_fetcher.fetch(done.links[0], what=RESULT_LINK)
            return EncodedVideo(await self._media(fetched, done.links[0], "video"))
        fetched = await self._fetcher.fetch(done.links[0], what=RESULT_LINK)
        return await asyncio.to_thread(self._picture, fetched, done.links[0], job)

    async def _track(self, url: str, title: str) -> Track:
        fetched = await self._media_fetcher.fetch(url, what=RESULT_LINK)
        return Track(await self._media(fetched, url, "audio"), title)

    async def _media(self, fetched: Fetched, url: str, kind: str) -> bytes:
        """The downloaded clip or track, once PyAV reads a duration from it (in a thread)."""
        if await asyncio.to_thread(duration_of, fetched.data) is None:
            raise GenerationError(
                f"{RESULT_LINK} at {host_for_message(url)} is not {kind} that can be read."
            )
        return fetched.data

    def _picture(self, fetched: Fetched, url: str, job: Job) -> Image.Image:
        """The result decoded (its pixels counted first) and fitted: run in a thread."""
        what = f"{RESULT_LINK} at {host_for_message(url)}"
        image = self._fetcher.open_image(fetched.data, what=what, content_type=fetched.content_type)
        return _images.fit(_images.rgb_or_rgba(image), job.width, job.height)

    def _create(self, job: Job, images: list[str]) -> Awaitable[Task]:
        audio = self.spec.kind == "audio"
        return self._client.create(
            job.prompt,
            self.model,
            None
            if audio
            else _images.provider_ratio(self.spec, job.width, job.height, self.ratios),
            seed=job.seed,  # Darkroom honours it; the hosted service ignores unknown fields
            negative_prompt=job.negative_prompt or None,
            images=images or None,
        )

    async def _fetch(self, upstream_id: str) -> Task:
        """One poll, without retries: the poller spaces out a failed poll's next try."""
        return await self.upstream.once(lambda: self._asked(self._client.result(upstream_id)))

    async def _cancel(self, upstream_id: str) -> None:
        await self.upstream.once(lambda: self._asked(self._client.cancel(upstream_id)))

    async def _asked(self, request: Awaitable[T], who: str = PROVIDER) -> T:
        """Awaits a call of the client, its errors translated."""
        try:
            return await request
        except DarkroomError as exc:
            raise self._failure(exc, who) from None
        except (RecursionError, OverflowError):
            # A JSON reply nested too deep to parse, or a number past a float's range where
            # the client reads one (progress): this call's failure, not every task's.
            raise UpstreamFailure(
                f"{who} answered with something other than a task", retryable=True
            ) from None

    # -- what went wrong -----------------------------------------------------------------

    def _failure(self, exc: DarkroomError, who: str = PROVIDER) -> Exception:
        """The client's error as a failure this engine retries or not, in words for users."""
        if isinstance(exc, DownloadError) and isinstance(exc.__cause__, UnexpectedResponse):
            exc = exc.__cause__  # a 429 or 5xx from the storage host: it may pass
        if isinstance(exc, ConnectionFailed):
            return connection_failure(PROVIDER, exc.__cause__ or exc)
        if isinstance(exc, UnexpectedResponse) and exc.status_code != 200:
            return http_failure(who, exc.status_code, None, [self._key])
        if isinstance(exc, UnexpectedResponse):
            return UpstreamFailure(
                f"{who} answered with something other than a task", retryable=True
            )
        if isinstance(exc, DownloadError):
            return UpstreamFailure(f"{who}: {exc.message}", retryable=False)
        if isinstance(exc, ApiError):
            return self._api_failure(int(exc.code or Code.INTERNAL), exc.message)
        return exc

    def _api_failure(self, code: int, message: str) -> Exception:
        said = scrub(message, [self._key]) if message else "no reason given"
        if code in _REFUSAL_CODES:
            return GenerationError(f"{PROVIDER} refused the request: {said} (code {code}).")
        if code in _PASSING_CODES:
            return UpstreamFailure(
                f"{PROVIDER} is busy or failing (code {code}: {said})", retryable=True
            )
        if code in _OPERATOR_CODES:
            return UpstreamFailure(
                f"{PROVIDER} {_OPERATOR_CODES[Code(code)]} (code {code}); please tell the "
                "operator of this service",
                retryable=False,
            )
        return UpstreamFailure(
            f"{PROVIDER} refused the request (code {code}: {said})", retryable=False
        )


def _tracks(done: Task) -> list[tuple[str, Track]]:
    """Each track's link with its title: the audio shape's `result`, or a lone `url`."""
    if done.tracks:
        return [(track.audio_url, Track(b"", track.title)) for track in done.tracks]
    return [(url, Track(b"")) for url in done.links]


def _data_url(jpeg: bytes) -> str:
    return f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}"


def _check_upstream_id(upstream_id: str) -> None:
    """Refuses an upstream task id that is empty, too long or not printable ASCII; the
    message tells its length, never the id itself."""
    if (
        0 < len(upstream_id) <= MAX_UPSTREAM_ID
        and upstream_id.isascii()
        and upstream_id.isprintable()
    ):
        return
    raise GenerationError(
        f"{PROVIDER} answered with a task id that is not valid ({len(upstream_id)} characters, "
        f"at most {MAX_UPSTREAM_ID} printable ones allowed); please try again later."
    )
