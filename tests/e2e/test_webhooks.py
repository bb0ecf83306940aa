"""Webhooks over real `darkroom serve` processes, on SQLite and on PostgreSQL: a task's end is
posted to a local receiver, signed as Standard Webhooks says (checked with the spec's reference
package), retried after a 500 and after a receiver too slow to answer, until it is taken; a
delivery survives a SIGKILL of the node that was retrying it; a loopback target is never
contacted while private addresses are refused; and the deliveries listing shows every
attempt. Backoffs are a fraction of a second here (their schedule is the settings')."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.backends import Backend
from tests.support.catalogs import CONFIGS
from tests.support.fakes.webhook_receiver import WebhookReceiver
from tests.support.servers import Darkroom, wait_for_status

QUICK = {
    "webhook_backoff_first_seconds": 0.4,
    "webhook_backoff_cap_seconds": 0.8,
    "webhook_timeout_seconds": 2,
    "webhook_poll_seconds": 0.1,
    "allow_private_urls": 1,  # the receiver is on loopback
}
WAIT_SECONDS = 60.0  # a bound for a hung test, not a measure


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def installation(backend: Backend, tmp_path: Path, *serve_args: str, **settings: Any) -> Darkroom:
    darkroom = backend.installation(tmp_path / "darkroom", CONFIGS / "test.toml", **settings)
    (tmp_path / "darkroom").mkdir(exist_ok=True)
    darkroom.start_server(*serve_args)
    return darkroom


def key_and_secret(darkroom: Darkroom, *args: str) -> tuple[str, str]:
    made = darkroom.cli("keys", "create", "--name", "hooks", *args)
    (secret,) = [line.split(": ", 1)[1] for line in made.stderr.splitlines() if "secret" in line]
    return made.stdout.strip(), secret


def http(darkroom: Darkroom, key: str) -> httpx.Client:
    return httpx.Client(base_url=darkroom.base_url, headers={"Authorization": key}, timeout=30)


def deliveries(client: httpx.Client, task_id: str) -> dict[str, Any]:
    answer = client.get("/v1/media/deliveries", params={"task_id": task_id}).json()
    assert answer["code"] == 0, answer
    return answer


def eventually_delivery(client: httpx.Client, task_id: str, done: Any, what: str) -> dict[str, Any]:
    """The task's delivery once `done(delivery)` holds."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        data = deliveries(client, task_id)["data"]
        if data and done(data[0]):
            return data[0]
        time.sleep(0.05)
    raise AssertionError(f"still waiting after {WAIT_SECONDS:g} s for {what}: {data}")


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    task = client.post("/v1/media/create", json={"model": "tiny-512", "prompt": "a pier", **fields})
    assert task.json()["code"] == 0, task.json()
    return task.json()


def verified(secret: str, posts: list[Any]) -> list[Any]:
    """Each post's body, once the reference implementation accepted its signature."""
    return [Webhook(secret).verify(p.body.decode(), p.headers) for p in posts]


def test_a_500_then_a_timeout_then_success_makes_exactly_three_signed_attempts(
    backend, tmp_path, receiver
):
    darkroom = installation(backend, tmp_path, **QUICK)
    try:
        key, secret = key_and_secret(darkroom)
        receiver.fail_next(500)
        receiver.stall_next(6.0)  # past the two-second deadline
        with http(darkroom, key) as client:
            task = create(client, callback_url=receiver.url)
            ended = wait_for_status(client, task["id"])
            delivery = eventually_delivery(
                client, task["id"], lambda d: d["status"] == "delivered", "the delivery"
            )
            result = client.get("/v1/media/result", params={"task_id": task["id"]}).json()
    finally:
        darkroom.stop()
    assert ended["status"] == "done"
    assert len(receiver.posts) == 3
    bodies = verified(secret, receiver.posts)
    assert bodies == [result] * 3  # the task object, as /result answers it
    assert {p.headers["webhook-id"] for p in receiver.posts} == {f"msg_{task['id']}"}
    attempts = delivery["attempts"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [a["status_code"] for a in attempts] == [500, None, 200]
    assert "HTTP 500" in attempts[0]["error"] and "in time" in attempts[1]["error"]
    assert attempts[2]["error"] is None
    assert attempts[0]["at"] < attempts[1]["at"] < attempts[2]["at"]
    assert delivery["id"] == f"msg_{task['id']}" and delivery["next_attempt_at"] is None


def test_a_canceled_task_is_posted_to_its_keys_default_callback_with_its_new_secret(
    backend, tmp_path, receiver
):
    darkroom = installation(backend, tmp_path, "--workers", "0", **QUICK)
    try:
        key, first_secret = key_and_secret(darkroom, "--callback-url", receiver.url)
        secret = darkroom.cli("keys", "webhook-secret", key).stdout.strip()
        with http(darkroom, key) as client:
            task = create(client)  # no callback_url of its own: the key's
            canceled = client.post("/v1/media/cancel", json={"task_id": task["id"]}).json()
            eventually_delivery(
                client, task["id"], lambda d: d["status"] == "delivered", "the delivery"
            )
    finally:
        darkroom.stop()
    assert secret.startswith("whsec_") and secret != first_secret
    (body,) = verified(secret, receiver.posts)
    assert body == canceled and body["status"] == "failed" and body["message"] == "canceled"
    with pytest.raises(WebhookVerificationError):  # the old secret signs nothing any more
        Webhook(first_secret).verify(receiver.posts[0].body.decode(), receiver.posts[0].headers)


def test_keys_create_refuses_a_callback_url_that_cannot_be_posted_to(darkroom):
    made = darkroom.cli("keys", "create", "--callback-url", "ftp://example.com", check=False)
    assert made.returncode == 2 and made.stdout == ""
    assert "--callback-url" in made.stderr and "http(s)" in made.stderr


def test_a_sigkill_while_retrying_loses_nothing_and_sends_nothing_twice(
    backend, tmp_path, receiver
):
    # A wait of 1.5 to 3 s after the 500, in which the node is killed. No workers: a canceled
    # task ends at once.
    darkroom = installation(
        backend,
        tmp_path,
        "--workers",
        "0",
        **{**QUICK, "webhook_backoff_first_seconds": 3, "webhook_backoff_cap_seconds": 3},
    )
    try:
        key, secret = key_and_secret(darkroom)
        receiver.fail_next(500)
        with http(darkroom, key) as client:
            task = create(client, callback_url=receiver.url)
            client.post("/v1/media/cancel", json={"task_id": task["id"]})
            eventually_delivery(client, task["id"], lambda d: d["attempts"], "the first attempt")
            (server,) = darkroom.processes
            server.send_signal(signal.SIGKILL)
            server.wait()
            darkroom.processes.clear()
            assert len(receiver.posts) == 1  # killed before the retry was due
            darkroom.start_server("--workers", "0")
            delivery = eventually_delivery(
                client, task["id"], lambda d: d["status"] == "delivered", "the retry"
            )
    finally:
        darkroom.stop()
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 200]
    assert len(receiver.posts) == 2
    assert verified(secret, receiver.posts)[0]["id"] == task["id"]


def test_a_loopback_target_is_never_contacted_while_private_addresses_are_refused(
    backend, tmp_path, receiver
):
    darkroom = installation(
        backend, tmp_path, "--workers", "0", **{**QUICK, "allow_private_urls": 0}
    )
    try:
        key, _ = key_and_secret(darkroom)
        with http(darkroom, key) as client:
            task = create(client, callback_url=receiver.url)
            client.post("/v1/media/cancel", json={"task_id": task["id"]})
            delivery = eventually_delivery(
                client, task["id"], lambda d: len(d["attempts"]) >= 2, "two refused attempts"
            )
    finally:
        darkroom.stop()
    assert receiver.requests == []
    assert delivery["status"] == "pending"  # refused now; tried again (a name may move)
    for attempt in delivery["attempts"]:
        assert attempt["status_code"] is None
        assert attempt["error"] == (
            "the webhook at 127.0.0.1 is not allowed: it is not a public address."
        )


# -- on the shared server: what create accepts, and the listing's answers -------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "example.com/hook",
        "http://",
        "https://exa mple.com/",
        "http://example.com:port/",
        "https://example.com/" + "a" * 2000,
    ],
)
@pytest.mark.parametrize("route", ["create", "generate"])
def test_a_callback_url_that_cannot_be_posted_to_is_code_3(client, url, route):
    body = {"model": "tiny-512", "prompt": "a pier", "callback_url": url}
    answer = client.post(f"/v1/media/{route}", json=body).json()
    assert answer["code"] == 3, answer
    (issue,) = answer["issues"]
    assert issue["path"] == ["callback_url"] and "callback_url" in issue["message"]


def test_a_callback_url_of_another_type_is_code_3(client):
    answer = client.post(
        "/v1/media/create", json={"model": "tiny-512", "prompt": "x", "callback_url": 5}
    ).json()
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["callback_url"]


def test_deliveries_answers_only_the_keys_own_tasks(client, darkroom):
    mine = create(client)
    assert deliveries(client, mine["id"]) == {"code": 0, "task_id": mine["id"], "data": []}
    with http(darkroom, darkroom.create_key("--name", "other")) as other:
        answer = other.get("/v1/media/deliveries", params={"task_id": mine["id"]}).json()
    assert answer["code"] == 4
    assert client.get("/v1/media/deliveries").json()["code"] == 3
    assert client.get("/v1/media/deliveries", params={"task_id": "nope"}).json()["code"] == 3
    assert json.loads(client.get("/v1/media/deliveries").content)["issues"]
