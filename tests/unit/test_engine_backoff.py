"""The one backoff rule (darkroom/backoff.py) that the client, the upstream engines and the
relay's poller share: growth, cap, jitter over the upper half, and no overflow on long waits."""

from __future__ import annotations

import pytest

from darkroom.backoff import Backoff
from darkroom.client import Backoff as ClientBackoff
from darkroom.client.policy import DEFAULT_POLLS
from darkroom.engines.upstream._poller import MIN_POLL_SECONDS, PollTiming
from darkroom.engines.upstream.options import UpstreamOptions
from darkroom.tasks.store import retry_delay


def test_delays_grow_by_the_factor_up_to_the_cap():
    backoff = Backoff(first=0.5, factor=2, cap=3, jitter=False)
    assert [backoff.delay(n) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_jitter_spreads_each_delay_over_its_upper_half():
    backoff = Backoff(first=1, factor=2, cap=8)
    for attempt in range(6):
        ceiling = min(8, 2**attempt)
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_a_wait_that_runs_for_hours_stays_at_the_cap():
    assert Backoff(first=0.25, factor=1.5, cap=3, jitter=False).delay(100_000) == 3


def test_the_client_exports_the_same_backoff():
    assert ClientBackoff is Backoff
    assert [DEFAULT_POLLS.delay(n) for n in range(3)] == [0.25, 0.375, 0.5625]


def test_the_queue_retry_delay_is_one_of_its_settings():
    queue = Backoff(first=1, factor=2, cap=60, jitter=False)
    assert [queue.delay(n) for n in range(8)] == [retry_delay(n) for n in range(8)]


def test_relay_polls_slow_down_and_failed_polls_back_off():
    timing = PollTiming(poll_seconds=2, poll_max_seconds=10)
    assert [timing.polls.delay(n) for n in range(6)] == [2, 3, 4.5, 6.75, 10, 10]
    assert all(1 <= timing.failed_polls.delay(0) <= 2 for _ in range(50))
    assert MIN_POLL_SECONDS == 1


@pytest.mark.parametrize("attempt", [0, 1, 5])
def test_upstream_retries_double_from_the_initial_wait(attempt):
    limits = UpstreamOptions(retry_initial_seconds=1, retry_max_seconds=4)
    ceiling = min(4, 2**attempt)
    assert ceiling / 2 <= limits.backoff.delay(attempt) <= ceiling
