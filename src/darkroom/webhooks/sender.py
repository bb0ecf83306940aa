"""The sender: every API and worker node runs one (App starts it with maintenance). It takes
due deliveries from the outbox with a lease, posts each task's end to its callback URL through
the guarded fetcher, and records the attempt with the delivery's next state:

- a 2xx answer: delivered;
- anything else (another status, a refused address, no answer, too slow): tried again after a
  growing wait with jitter (`Backoff`: `webhook_backoff_first_seconds` doubling up to
  `webhook_backoff_cap_seconds`), until an attempt fails `webhook_retry_hours` or more after
  the task ended; the delivery is then given up (failed).

It runs on its own asyncio tasks, with at most `max_in_flight` posts at once, so a slow
receiver holds up neither the workers nor the API. A node that dies holding a delivery lets go
of it when its lease runs out (the post's deadline and a margin), and another node, or the
same one restarted, tries again then: nothing is lost, and nothing is sent again before the
lease says the first attempt may have died. A node that stops cleanly finishes its posts first.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog

from darkroom import __version__
from darkroom.backoff import Backoff
from darkroom.fetch import Fetcher, FetchFailed, host_for_message
from darkroom.keys import KeyStore
from darkroom.storage import Storage
from darkroom.tasks import Task, TaskStore
from darkroom.webhooks.outbox import DELIVERED, FAILED, PENDING, Attempt, Delivery, Outbox
from darkroom.webhooks.signing import sign

log = structlog.get_logger("darkroom.webhooks")

USER_AGENT = f"Darkroom/{__version__} (webhooks)"
# Beyond the post's own deadline, the time a sender may take to read the task and record the
# attempt before its lease runs out and another sender may try.
LEASE_MARGIN_SECONDS = 30.0


@dataclass(frozen=True)
class Schedule:
    """When to try again after a failed attempt, and when to stop."""

    backoff: Backoff
    retry_seconds: float

    def next_state(self, delivery: Delivery, attempt: Attempt, *, gone: bool) -> tuple[str, float]:
        """(status, next attempt time) after this attempt."""
        now = time.time()
        if attempt.error is None:
            return DELIVERED, now
        if gone or now - delivery.created_at >= self.retry_seconds:
            return FAILED, now
        return PENDING, now + self.backoff.delay(delivery.attempts)


class TaskGone(Exception):
    """The delivery's task (or its key) no longer exists: there is nothing to send."""


class Sender:
    def __init__(
        self,
        outbox: Outbox,
        store: TaskStore,
        keys: KeyStore,
        storage: Storage,
        fetcher: Fetcher,
        schedule: Schedule,
        *,
        owner: str,
        retention_seconds: float,
        poll_seconds: float = 1.0,
        max_in_flight: int = 16,
    ) -> None:
        self.outbox = outbox
        self.store = store
        self.keys = keys
        self.storage = storage
        self.fetcher = fetcher
        self.schedule = schedule
        self.owner = owner
        self.retention_seconds = retention_seconds
        self.poll_seconds = poll_seconds
        self.max_in_flight = max_in_flight
        self.lease_seconds = fetcher.limits.timeout_seconds + LEASE_MARGIN_SECONDS
        self._stopping = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Until stopped: claims what is due every `poll_seconds` and posts it; on stopping,
        lets the posts in hand finish (each within its deadline)."""
        try:
            while not self._stopping.is_set():
                try:
                    await self._claim_due()
                except Exception:  # the database may be briefly unreachable: next tick
                    log.exception("webhook claim failed", owner=self.owner)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)
        finally:
            await asyncio.gather(*self._sending, return_exceptions=True)

    async def _claim_due(self) -> None:
        room = self.max_in_flight - len(self._sending)
        if room <= 0 or not await self.outbox.any_due():
            return
        claimed = await self.outbox.claim(self.owner, limit=room, lease_seconds=self.lease_seconds)
        for delivery in claimed:
            sending = asyncio.create_task(
                self.deliver(delivery), name=f"webhook {delivery.task_id}"
            )
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    async def deliver(self, delivery: Delivery) -> None:
        """One attempt at a claimed delivery, and its record."""
        gone = False
        try:
            attempt = await self._attempt(delivery)
        except TaskGone as exc:
            attempt, gone = Attempt(delivery.attempts + 1, time.time(), None, 0, str(exc)), True
        except Exception:  # a bug: the lease runs out and the delivery is tried again then
            log.exception("webhook attempt failed", task_id=delivery.task_id)
            return
        status, next_at = self.schedule.next_state(delivery, attempt, gone=gone)
        kept = await self.outbox.record(
            delivery, self.owner, attempt, status=status, next_at=next_at
        )
        log.info(
            "webhook attempt",
            task_id=delivery.task_id,
            attempt=attempt.attempt,
            status_code=attempt.status_code,
            error=attempt.error,
            delivery=status if kept else "lease lost",
        )

    async def _attempt(self, delivery: Delivery) -> Attempt:
        body, secret = await self._message(delivery)
        started, clock = time.time(), time.monotonic()
        status_code, error = None, None
        try:
            answered = await self.fetcher.post(delivery.url, body, _headers(delivery, body, secret))
            status_code = answered.status_code
            if not 200 <= status_code < 300:
                error = (
                    f"the webhook at {host_for_message(delivery.url)} answered HTTP {status_code}"
                )
                if 300 <= status_code < 400:
                    error += " (redirects are not followed)"
        except FetchFailed as exc:
            error = str(exc)
        latency_ms = round((time.monotonic() - clock) * 1000)
        return Attempt(delivery.attempts + 1, started, status_code, latency_ms, error)

    async def _message(self, delivery: Delivery) -> tuple[bytes, str]:
        """The body (the task object, as /result answers it) and the secret that signs it."""
        task = await self.store.get(delivery.task_id)
        secret = await self.keys.webhook_secret(delivery.key_id)
        if task is None or secret is None:
            raise TaskGone("the task or its key no longer exists")
        return self._body(task), secret

    def _body(self, task: Task) -> bytes:
        # Imported here: the API package imports the App, which starts this sender.
        from darkroom.api.presenters import TaskObject

        shown = TaskObject.of(task, self.storage, self.retention_seconds)
        return shown.model_dump_json(exclude_unset=True).encode()


def _headers(delivery: Delivery, body: bytes, secret: str) -> dict[str, str]:
    """Standard Webhooks' three headers, signed now (a retry carries a fresh timestamp)."""
    timestamp = int(time.time())
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, delivery.message_id, timestamp, body),
    }
