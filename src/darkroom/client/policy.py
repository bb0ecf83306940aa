"""How long to wait between tries and between polls, and which failures are worth a retry.

Shared by the sync and the async client: they only carry out the sleeps this module decides.
The delays themselves are darkroom/backoff.py's `Backoff`, the one the engines use too.
"""

from __future__ import annotations

from dataclasses import dataclass

from darkroom.backoff import Backoff
from darkroom.client.errors import ConnectionFailed, DarkroomError, Overloaded, UnexpectedResponse

__all__ = ["DEFAULT_POLLS", "Backoff", "RetryPolicy", "is_transient"]


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures (code 6, HTTP 429 and 5xx, connection errors) are retried up to
    `attempts` tries in all, with `backoff` between them (or the server's Retry-After)."""

    attempts: int = 4
    backoff: Backoff = Backoff()

    def delay(self, error: DarkroomError, attempt: int) -> float:
        if isinstance(error, UnexpectedResponse) and error.retry_after is not None:
            return min(error.retry_after, self.backoff.cap)
        return self.backoff.delay(attempt)


# Polls start quick, since small models finish in a second, and settle at a few seconds.
DEFAULT_POLLS = Backoff(first=0.25, factor=1.5, cap=3.0, jitter=False)

# HTTP statuses that prove the request was not taken: a create answered with one may be sent
# again. Other 5xx (502, 504) may come from a proxy after the server queued the task.
_REFUSED_STATUSES = (429, 503)


def is_transient(error: DarkroomError, *, idempotent: bool) -> bool:
    """Whether trying the same request again may succeed without doing the work twice."""
    if isinstance(error, Overloaded):
        return True  # the server refused the request: nothing was queued
    if isinstance(error, UnexpectedResponse):
        status = error.status_code
        return status in _REFUSED_STATUSES or (idempotent and status >= 500)
    if isinstance(error, ConnectionFailed):
        return idempotent or not error.sent
    return False
