"""How long to wait before trying again, written once.

Every wait in Darkroom that grows after each try is a `Backoff`: the client's retries and
polls (client/policy.py), the upstream engines' retries (engines/upstream/calls.py), the relay's
polls and its failed polls (engines/upstream/_poller.py). Before this module there were five
copies of the arithmetic, with three different jitters; now there is one rule: a delay grows by
`factor` from `first` up to `cap`, and with `jitter` it is spread over its upper half.

A task retried by the queue waits `Backoff(first=1, factor=2, cap=60, jitter=False)`: 1, 2,
4, ... seconds, capped at a minute (what tasks/store.py's `retry_delay` computes).
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """Delays that grow by `factor` from `first` up to `cap` seconds."""

    first: float = 0.5
    factor: float = 2.0
    cap: float = 8.0
    jitter: bool = True
    """Spread each delay over its upper half, so that many clients do not retry in step."""

    def delay(self, attempt: int) -> float:
        """Seconds to wait after try number `attempt` (0 after the first try)."""
        try:
            base = min(self.cap, self.first * self.factor**attempt)
        except OverflowError:  # a poll loop that ran for hours: long past the cap
            base = self.cap
        return base * random.uniform(0.5, 1.0) if self.jitter else base
