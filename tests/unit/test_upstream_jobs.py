"""The places of a video or audio model's jobs upstream (calls.py, `Upstream.job_slot`): at
most `max_in_flight` at once (2 by default, 4 requests for an image model), taken in turn; a
waiter that is canceled, or whose coroutine is cancelled (a shutdown), takes none away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from darkroom.engines.upstream.calls import Upstream
from darkroom.engines.upstream.options import UpstreamOptions
from darkroom.errors import TaskCanceled

WAIT_SECONDS = 10.0  # a bound for a hung test, not a measure


def never() -> bool:
    return False


@pytest.mark.parametrize(("kind", "limit"), [("image", 4), ("video", 2), ("audio", 2)])
def test_each_kind_has_its_default_and_an_entry_overrides_it(kind: str, limit: int) -> None:
    assert UpstreamOptions().in_flight(kind) == limit
    assert UpstreamOptions(max_in_flight=3).in_flight(kind) == 3


async def test_jobs_beyond_the_limit_wait_and_enter_in_turn() -> None:
    upstream = Upstream("The provider", UpstreamOptions(), kind="video")
    inside, most, order = 0, 0, []
    release = asyncio.Event()

    async def job(n: int) -> None:
        nonlocal inside, most
        async with upstream.job_slot(never):
            inside += 1
            most = max(most, inside)
            order.append(n)
            await release.wait()
            inside -= 1

    jobs = [asyncio.create_task(job(n)) for n in range(5)]
    while len(order) < 2:
        await asyncio.sleep(0.01)
    release.set()
    await asyncio.wait_for(asyncio.gather(*jobs), WAIT_SECONDS)
    assert most == 2
    assert order == [0, 1, 2, 3, 4]


async def test_an_image_models_jobs_take_no_place() -> None:
    upstream = Upstream("The provider", UpstreamOptions(max_in_flight=1))
    async with upstream.job_slot(never), upstream.job_slot(never):
        pass  # two at once, though the limit on requests is 1


async def test_a_canceled_waiter_gives_up_and_one_cancelled_from_outside_leaks_nothing() -> None:
    upstream = Upstream("The provider", UpstreamOptions(max_in_flight=1), kind="video")
    canceled = False

    async def waiting(is_canceled: Callable[[], bool]) -> None:
        async with upstream.job_slot(is_canceled):
            raise AssertionError("it entered while the place was taken")

    async with upstream.job_slot(never):
        asked_to_stop = asyncio.create_task(waiting(lambda: canceled))
        shut_down = asyncio.create_task(waiting(never))
        await asyncio.sleep(0.05)  # both wait for the one place
        canceled = True
        with pytest.raises(TaskCanceled):
            await asyncio.wait_for(asked_to_stop, WAIT_SECONDS)
        shut_down.cancel()
        with pytest.raises(asyncio.CancelledError):
            await shut_down
    async with asyncio.timeout(WAIT_SECONDS), upstream.job_slot(never):
        pass  # the place is free again: neither waiter kept it
