"""What one key may hold of a shared server: requests per second, tasks waiting, tasks running
and spend per day. Each limit is the key's own (set by `darkroom keys create/update`) or, where
the key has none, the server's default (DARKROOM_KEY_RATE, ..._MAX_WAITING, ..._MAX_RUNNING,
..._DAILY_SPEND); None is no limit. Over a limit the media API answers code 6 with a Retry-After
header.

Where each is enforced:
- the request rate, on every authenticated request, by a token bucket in the database
  (keys/rate.py), so all API nodes and processes share it;
- tasks waiting and spend per day, when a create is admitted (tasks/admission.py), in the same
  transaction as its charge; spend is the costs of the key's tasks created in the last 24 hours
  and not given back;
- tasks running, when workers claim (tasks/fair.py): a key at its limit is passed over.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Limits:
    rate: float | None = None
    """Requests per second, with bursts of up to max(1, rate) requests."""
    max_waiting: int | None = None
    max_running: int | None = None
    daily_spend: Decimal | None = None

    def over(self, defaults: Limits) -> Limits:
        """These limits, each one unset taken from `defaults`."""
        return Limits(
            rate=self.rate if self.rate is not None else defaults.rate,
            max_waiting=self.max_waiting if self.max_waiting is not None else defaults.max_waiting,
            max_running=self.max_running if self.max_running is not None else defaults.max_running,
            daily_spend=self.daily_spend if self.daily_spend is not None else defaults.daily_spend,
        )

    @property
    def burst(self) -> float:
        return max(1.0, self.rate or 1.0)


NO_LIMITS = Limits()
