"""The guarded fetcher's `post`, as the webhook sender uses it, against a local receiver: the
body and headers arrive as given, a redirect is answered as it came and never followed, only
the first `max_bytes` of an answer are read, a slow receiver is cut off at the deadline, and a
loopback target is refused without being contacted unless private addresses are allowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from darkroom.fetch import Fetcher, FetchFailed, FetchLimits
from tests.support.fakes.base import Answer
from tests.support.fakes.webhook_receiver import WebhookReceiver

LIMITS = FetchLimits(max_bytes=1024, timeout_seconds=1.0)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def allowed() -> Fetcher:
    return Fetcher(limits=LIMITS, allow_private=True)


async def test_the_body_and_headers_arrive_as_given(receiver: WebhookReceiver) -> None:
    answered = await allowed().post(receiver.url, b'{"a": 1}', {"webhook-id": "msg_1"})
    assert answered.status_code == 200
    (post,) = receiver.posts
    assert post.body == b'{"a": 1}' and post.headers["webhook-id"] == "msg_1"


async def test_a_redirect_is_answered_as_it_came_and_not_followed(
    receiver: WebhookReceiver,
) -> None:
    with WebhookReceiver() as elsewhere:
        receiver.answer_next(Answer(307, b"", {"Location": elsewhere.url}))
        answered = await allowed().post(receiver.url, b"{}", {})
        assert answered.status_code == 307
        assert elsewhere.requests == []


async def test_only_the_head_of_a_large_answer_is_read(receiver: WebhookReceiver) -> None:
    receiver.answer_next(Answer(200, b"x" * 1_000_000))
    answered = await allowed().post(receiver.url, b"{}", {})
    assert answered.status_code == 200 and len(answered.head) == LIMITS.max_bytes


async def test_a_slow_receiver_is_cut_off_at_the_deadline(receiver: WebhookReceiver) -> None:
    receiver.stall_next(3.0)
    with pytest.raises(FetchFailed, match="did not answer in time"):
        await allowed().post(receiver.url, b"{}", {})


async def test_a_loopback_target_is_refused_without_being_contacted(
    receiver: WebhookReceiver,
) -> None:
    with pytest.raises(FetchFailed, match="127.0.0.1 is not allowed"):
        await Fetcher(limits=LIMITS, allow_private=False).post(receiver.url, b"{}", {})
    assert receiver.requests == []
