"""What every upstream engine (google, openai, relay) shares: a limit on requests in flight, a
timeout per request, retries with backoff and jitter for failures that may pass (429, 5xx, a
lost connection, a timeout) and none for the rest, and messages a user can act on that never
carry a credential.

For a video or audio model the limit that matters is another: providers cap how many jobs run
at once (a Veo operation, a relayed task), whatever the requests. There `max_in_flight` is the
number of jobs outstanding upstream (`Upstream.job_slot`, held from before a job starts until
it ends); each job makes one request at a time, so its requests stay within the same number.

An engine translates its SDK's exceptions into `UpstreamFailure` (or `GenerationError` for a
safety block); `Upstream.call` owns the limit, the timeout and the retries, and turns what is
left after the last try into a `GenerationError`, which fails that task alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TypeVar

import structlog
import tenacity

from darkroom.engines.base import GenerationError, Job, Outcome
from darkroom.engines.media import Media
from darkroom.engines.upstream.options import UpstreamOptions
from darkroom.errors import Code, TaskCanceled

log = structlog.get_logger("darkroom.engines")
T = TypeVar("T")

# Shapes of credentials that a provider's error text may echo back (API keys, OAuth tokens).
_SECRET_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{10,}|ya29\.[0-9A-Za-z_\-.]+"
    r"|(?i:bearer)\s+[^\s\"',]+|key=[^\s&\"']+)"
)
MAX_MESSAGE_CHARS = 300
# How often a job waiting for its place upstream looks whether its task was canceled: the
# worker's heartbeat reads cancels each second.
CANCEL_CHECK_SECONDS = 1.0


class UpstreamFailure(Exception):
    """A call to the provider failed. `message` is meant for the user; `retryable` failures
    (rate limits, server errors, lost connections, timeouts) are tried again."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


def http_failure(
    provider: str, status: int, detail: str | None, secrets: Iterable[str]
) -> UpstreamFailure:
    """The failure for an HTTP error status from `provider`, retryable for 408, 429 and 5xx."""
    if status == 429:
        return UpstreamFailure(f"{provider} is rate limiting requests (HTTP 429)", retryable=True)
    if status == 408 or status >= 500:
        return UpstreamFailure(
            f"{provider} is not available right now (HTTP {status})", retryable=True
        )
    if status in (401, 403):
        return UpstreamFailure(
            f"{provider} refused this server's credentials (HTTP {status}); "
            "please tell the operator of this service",
            retryable=False,
        )
    said = f": {scrub(detail, secrets)}" if detail else ""
    return UpstreamFailure(f"{provider} refused the request (HTTP {status}){said}", retryable=False)


def connection_failure(provider: str, exc: BaseException) -> UpstreamFailure:
    kind = (
        "did not answer in time"
        if "timeout" in type(exc).__name__.lower()
        else "could not be reached"
    )
    return UpstreamFailure(f"{provider} {kind} ({type(exc).__name__})", retryable=True)


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without any known secret or anything shaped like one, and not too long."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _SECRET_SHAPES.sub("[redacted]", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


class Upstream:
    """One engine's connection policy to its provider."""

    def __init__(self, provider: str, limits: UpstreamOptions, kind: str = "image") -> None:
        self.provider = provider
        self.limits = limits
        self.kind = kind
        self.in_flight = limits.in_flight(kind)
        self._slots = asyncio.Semaphore(self.in_flight)
        self._jobs = asyncio.Semaphore(self.in_flight)

    @contextlib.asynccontextmanager
    async def job_slot(self, canceled: Callable[[], bool]) -> AsyncIterator[None]:
        """For a video or audio model: holds one of its `max_in_flight` places upstream while
        the block starts a job and waits for it to end. A job beyond them waits here, first
        come first served, while its worker's heartbeat keeps its lease; a task canceled while
        it waits raises TaskCanceled and never starts. An image model's jobs hold no place
        (its limit is on requests alone)."""
        if self.kind == "image":
            yield
            return
        await self._wait_for_job_slot(canceled)
        try:
            yield
        finally:
            self._jobs.release()

    async def _wait_for_job_slot(self, canceled: Callable[[], bool]) -> None:
        # One acquire that keeps its place in the line while cancels are looked at.
        acquiring = asyncio.ensure_future(self._jobs.acquire())
        try:
            while not acquiring.done():
                await asyncio.wait({acquiring}, timeout=CANCEL_CHECK_SECONDS)
                if not acquiring.done() and canceled():
                    raise TaskCanceled()
        except BaseException:
            if acquiring.done() and not acquiring.cancelled():
                self._jobs.release()  # acquired just as the wait was given up
            else:
                acquiring.cancel()
            raise

    async def call(
        self, request: Callable[[], Awaitable[T]], *, canceled: Callable[[], bool] | None = None
    ) -> T:
        """`request()` within the in-flight limit and the timeout, tried again on a retryable
        failure. Raises GenerationError when it cannot succeed, or TaskCanceled once
        `canceled()` is true before a try."""
        limits = self.limits
        backoff = limits.backoff
        retrying = tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(limits.attempts),
            wait=lambda state: backoff.delay(state.attempt_number - 1),
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, UpstreamFailure) and exc.retryable
            ),
            reraise=True,
        )
        try:
            return await retrying(self.once, request, canceled=canceled)
        except UpstreamFailure as exc:
            if exc.retryable:
                raise GenerationError(
                    f"{exc.message}; it was tried {limits.attempts} times. Please try again later."
                ) from exc
            raise GenerationError(f"{exc.message}.") from exc

    async def once(
        self, request: Callable[[], Awaitable[T]], *, canceled: Callable[[], bool] | None = None
    ) -> T:
        """`request()` once, within the in-flight limit and the timeout."""
        # A slot is held for one try only, never through a backoff sleep.
        async with self._slots:
            # Checked once a slot is free: a task canceled while it queued costs no request.
            if canceled is not None and canceled():
                raise TaskCanceled()
            try:
                async with asyncio.timeout(self.limits.timeout_seconds):
                    return await request()
            except TimeoutError as exc:
                raise UpstreamFailure(
                    f"{self.provider} did not answer within {self.limits.timeout_seconds:g} s",
                    retryable=True,
                ) from exc


async def each_job(
    jobs: list[Job], generate_one: Callable[[Job], Awaitable[Media]]
) -> list[Outcome]:
    """Runs the jobs of a batch concurrently (each engine's limit bounds them) and answers
    each with its image or the reason it alone failed. Anything else is a bug: it is raised,
    which fails (and retries) the whole batch."""
    results = await asyncio.gather(*(generate_one(job) for job in jobs), return_exceptions=True)
    outcomes: list[Outcome] = []
    for job, result in zip(jobs, results, strict=True):
        if isinstance(result, GenerationError):
            log.info("upstream job failed", task_id=job.task_id, message=str(result))
            outcomes.append(result)
        elif isinstance(result, BaseException):
            raise result
        else:
            outcomes.append(result)
    return outcomes


def prompt_blocked(provider: str, reason: str | None = None) -> GenerationError:
    """A refused prompt: code 1002 of the media API, named in the text for clients that
    only read messages."""
    said = f" ({scrub(reason)})" if reason else ""
    return GenerationError(
        f"The prompt was blocked by {provider}'s content safety check{said} "
        f"(code {Code.UNSAFE_PROMPT:d}); rephrase it and try again."
    )


def image_blocked(provider: str, reason: str | None = None) -> GenerationError:
    """A generated (or reference) image withheld by the provider's filter: code 1001."""
    said = f" ({scrub(reason)})" if reason else ""
    return GenerationError(
        f"The image was blocked by {provider}'s safety filter{said}: sensitive content "
        f"(code {Code.SENSITIVE_CONTENT:d}); change the prompt and try again."
    )
