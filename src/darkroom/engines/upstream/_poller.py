"""One coroutine that polls every upstream task an engine waits for.

The relay's tasks are asked for one at a time with Darkroom's own client (`fetch` is its
`result`); what this module adds is that one loop serves them all, however many are in flight.

Each task is polled when due: first `poll_seconds` after it was created (at least a second),
then 1.5 times longer each time it is still running, up to `poll_max_seconds`. A failed poll
counts against the task's `attempts` and is tried again with backoff; a run of failures, a
cancel, or a task that outlives `task_timeout` settles the task with a GenerationError, so no
task waits forever on an upstream that went away. Cancels and timeouts are looked at each
second, also while a task's poll is still waiting for its answer.

Tasks are polled by their upstream id, so two of ours may never share one: an upstream that
answers an id already in flight fails the second task at once (the first keeps it).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from darkroom.backoff import Backoff
from darkroom.client.models import Task
from darkroom.engines.base import BatchMonitor, GenerationError, Job
from darkroom.engines.upstream.calls import UpstreamFailure, scrub
from darkroom.engines.upstream.options import MIN_POLL_SECONDS, GoogleOptions, RelayOptions
from darkroom.errors import TaskCanceled

log = structlog.get_logger("darkroom.engines.poller")

Fetch = Callable[[str], Awaitable[Task]]  # upstream id -> the task, as the upstream answers
Cancel = Callable[[str], Awaitable[None]]
CLOSE_GRACE_SECONDS = 5.0  # how long a closing engine waits for the cancels it sent upstream


@dataclass(frozen=True)
class PollTiming:
    poll_seconds: float = 2.0
    poll_max_seconds: float = 10.0
    task_timeout: float = 900.0
    attempts: int = 4  # polls in a row that may fail before the task does

    @classmethod
    def from_options(cls, options: RelayOptions | GoogleOptions) -> PollTiming:
        first = max(MIN_POLL_SECONDS, options.poll_seconds)
        return cls(
            poll_seconds=first,
            poll_max_seconds=max(first, options.poll_max_seconds),
            task_timeout=options.task_timeout_seconds,
            attempts=options.attempts,
        )

    @property
    def polls(self) -> Backoff:
        """Waits between polls of a running task: 1.5 times longer each time."""
        return Backoff(first=self.poll_seconds, factor=1.5, cap=self.poll_max_seconds, jitter=False)

    @property
    def failed_polls(self) -> Backoff:
        """Waits after failed polls: doubling, with jitter, never under a second."""
        return Backoff(first=self.poll_seconds, cap=self.poll_max_seconds)


@dataclass(eq=False)
class _Waiting:
    job: Job
    upstream_id: str
    monitor: BatchMonitor
    batch_progress: dict[str, float]  # shared by the tasks of one batch
    result: asyncio.Future[Task]  # the done upstream task
    due: float
    deadline: float
    polls: int = 0  # answers that said the task is still running
    failures: int = 0  # polls in a row that failed
    polling: asyncio.Task[None] | None = None  # the poll in flight, if any


class PollerClosed(Exception):
    """The engine closed while a task still waited upstream: not the task's fault, so it is
    left to the worker's retries (another worker may finish it)."""


class Poller:
    def __init__(
        self,
        fetch: Fetch,
        cancel: Cancel,
        timing: PollTiming,
        *,
        provider: str,
        secrets: Sequence[str] = (),
        what: str = "image",
    ) -> None:
        self.fetch = fetch
        self.cancel = cancel
        self.timing = timing
        self.provider = provider
        self.what = what  # what the tasks make, as messages name it: image, video, audio
        self.secrets = list(secrets)
        self._waiting: dict[str, _Waiting] = {}  # by upstream id
        self._task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()

    async def wait(
        self, job: Job, upstream_id: str, monitor: BatchMonitor, batch_progress: dict[str, float]
    ) -> Task:
        """The upstream task once it is done with a link (its `url`, or an audio model's
        tracks)."""
        if upstream_id in self._waiting:
            # Two of our tasks cannot share one upstream task: the first keeps it, and this
            # one fails (not retried: the upstream is what is broken). No cancel is sent,
            # since it would stop the first task's work too.
            raise GenerationError(
                f"{self.provider} answered the same task id twice; please try again later."
            )
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting = _Waiting(
            job=job,
            upstream_id=upstream_id,
            monitor=monitor,
            batch_progress=batch_progress,
            result=loop.create_future(),
            due=now + self.timing.poll_seconds,
            deadline=now + self.timing.task_timeout,
        )
        self._waiting[upstream_id] = waiting
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="relay-poller")
        try:
            return await waiting.result
        finally:
            if self._waiting.get(upstream_id) is waiting:
                del self._waiting[upstream_id]
            if waiting.polling is not None:  # settled by a cancel or the timeout mid-poll
                waiting.polling.cancel()

    async def close(self) -> None:
        # Cancels already asked for upstream are sent before the engine's connection goes,
        # within a grace period: an upstream that stalls must not hold up a shutdown.
        if self._background:
            _, late = await asyncio.wait(self._background, timeout=CLOSE_GRACE_SECONDS)
            for task in late:
                task.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for waiting in list(self._waiting.values()):
            if waiting.polling is not None:
                waiting.polling.cancel()
            self._settle(waiting, error=PollerClosed("the engine closed while the task waited"))

    async def _run(self) -> None:
        try:
            await self._rounds()
        except Exception as exc:  # a bug here must not leave tasks waiting forever
            log.exception("poller failed")
            for waiting in self._waiting.values():
                self._settle(waiting, error=exc)

    async def _rounds(self) -> None:
        """Each second, and whenever a poll is due: settles the tasks canceled or past their
        timeout, and starts the polls due. Each poll runs on its own, so a slow answer for
        one task delays neither the others nor a cancel or timeout of its own."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            now = loop.time()
            for waiting in list(self._waiting.values()):
                self._check(waiting, now)
                if not waiting.result.done() and waiting.polling is None and waiting.due <= now:
                    waiting.polling = asyncio.create_task(self._poll(waiting), name="relay-poll")
            idle = [w.due for w in self._waiting.values() if not (w.polling or w.result.done())]
            next_due = min(idle, default=math.inf)
            await asyncio.sleep(min(max(next_due - loop.time(), 0.0), MIN_POLL_SECONDS))

    def _check(self, waiting: _Waiting, now: float) -> None:
        """Settles a task that was canceled, or that waited too long."""
        if waiting.result.done():
            return
        if waiting.monitor.is_canceled(waiting.job.task_id):
            self._settle(waiting, error=TaskCanceled())
            self._in_background(self._cancel_quietly(waiting.upstream_id))
        elif now > waiting.deadline:
            timeout = self.timing.task_timeout
            message = (
                f"{self.provider} did not finish the {self.what} in {timeout:g} s; "
                "please try again later."
            )
            self._settle(waiting, error=GenerationError(message))

    async def _poll(self, waiting: _Waiting) -> None:
        loop = asyncio.get_running_loop()
        try:
            task = await self.fetch(waiting.upstream_id)
        except UpstreamFailure as exc:
            self._failed(waiting, exc, loop.time())
        except GenerationError as exc:
            self._settle(waiting, error=exc)
        except Exception as exc:  # a bug: this task fails as a server error, no other
            log.exception("poll failed", task_id=waiting.job.task_id)
            self._settle(waiting, error=exc)
        else:
            waiting.failures = 0
            if not waiting.result.done():  # a cancel or the timeout may have come first
                self._answered(waiting, task, loop.time())
        finally:
            waiting.polling = None

    def _answered(self, waiting: _Waiting, task: Task, now: float) -> None:
        if task.done and task.links:
            self._settle(waiting, done=task)
        elif task.failed:
            said = task.message
            reason = scrub(said, self.secrets) if isinstance(said, str) else "no reason given"
            message = f"{self.provider} could not make the {self.what}: {reason}"
            self._settle(waiting, error=GenerationError(message))
        else:
            # As sent: a whole percent from Darkroom, maybe a fraction from another server.
            self._report_progress(waiting, task.raw.get("progress"))
            waiting.polls += 1
            waiting.due = now + self.timing.polls.delay(waiting.polls)

    def _failed(self, waiting: _Waiting, failure: UpstreamFailure, now: float) -> None:
        waiting.failures += 1
        if not failure.retryable or waiting.failures >= self.timing.attempts:
            tried = f"; it was tried {waiting.failures} times" if failure.retryable else ""
            error = GenerationError(f"{failure.message}{tried}. Please try again later.")
            self._settle(waiting, error=error)
            return
        pause = self.timing.failed_polls.delay(waiting.failures - 1)
        waiting.due = now + max(pause, MIN_POLL_SECONDS)
        log.info("upstream poll failed", task_id=waiting.job.task_id, error=failure.message)

    @staticmethod
    def _report_progress(waiting: _Waiting, progress: Any) -> None:
        """Darkroom sends whole percents; a float up to 1 is taken as a fraction. Anything
        else (a string, NaN, an infinity, an integer past a float's range) is ignored."""
        if isinstance(progress, bool) or not isinstance(progress, int | float):
            return
        try:
            value = float(progress)
        except OverflowError:
            return
        if not math.isfinite(value):
            return
        fraction = value if isinstance(progress, float) and value <= 1 else value / 100
        waiting.batch_progress[waiting.job.task_id] = min(max(fraction, 0.0), 1.0)
        shares = waiting.batch_progress.values()
        waiting.monitor.report(sum(shares) / len(shares))

    @staticmethod
    def _settle(
        waiting: _Waiting, *, done: Task | None = None, error: BaseException | None = None
    ) -> None:
        if waiting.result.done():  # already settled, or its waiter went away
            return
        if error is not None:
            waiting.result.set_exception(error)
        else:
            waiting.result.set_result(done)

    async def _cancel_quietly(self, upstream_id: str) -> None:
        """Asks the upstream to stop too; an upstream without the cancel extension says no."""
        with contextlib.suppress(UpstreamFailure, GenerationError):
            await self.cancel(upstream_id)

    def _in_background(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
