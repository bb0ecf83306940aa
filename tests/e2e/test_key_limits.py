"""Limits per key over real servers, on SQLite and on PostgreSQL (keys/limits.py): over its
request rate, its tasks waiting or its spend per day, a key's create is answered code 6 with the
hosted sentence and a Retry-After header, and other keys are not affected; the limits are set
with `darkroom keys create` and changed with `darkroom keys update`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from darkroom.errors import SENTENCES, Code
from tests.conftest import backend_named
from tests.support.backends import BACKENDS
from tests.support.catalogs import write_catalog
from tests.support.keys import within_key_cache
from tests.support.media import client_for
from tests.support.servers import Darkroom

BODY = {"model": "priced", "prompt": "a lighthouse"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Darkroom]:
    """No workers: what a key creates stays waiting."""
    root = tmp_path_factory.mktemp(f"limits-{request.param}")
    catalog = write_catalog(
        root / "catalog.toml", {"priced": {"engine": "tiny", "native_size": 256, "price": 1}}
    )
    with backend_named(request, request.param).running(root, catalog, "--workers", "0") as darkroom:
        yield darkroom


def create(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/media/create", json=BODY)


def assert_overloaded(answer: httpx.Response, words: str) -> int:
    """Code 6 with the hosted sentence, the limit in words, and Retry-After; its seconds."""
    body = answer.json()
    assert body["code"] == Code.OVERLOADED, body
    assert body["message"].startswith(SENTENCES[Code.OVERLOADED]) and words in body["message"]
    retry_after = int(answer.headers["retry-after"])
    assert retry_after >= 1
    return retry_after


def test_over_its_rate_a_key_is_told_when_to_come_back(server):
    limited, other = server.create_key("--rate", "1"), server.create_key()
    with client_for(server, limited) as client, client_for(server, other) as neighbour:
        assert create(client).json()["code"] == 0  # the burst: one request
        wait = assert_overloaded(create(client), "1 requests a second")
        assert client.get("/v1/media/models").json()["code"] == 6  # every route counts
        assert all(create(neighbour).json()["code"] == 0 for _ in range(5))
        time.sleep(wait)
        assert create(client).json()["code"] == 0


def test_at_its_limit_of_waiting_tasks_a_key_is_refused_until_one_leaves(server):
    key = server.create_key("--max-waiting", "2")
    with client_for(server, key) as client:
        first, second = create(client).json(), create(client).json()
        assert [first["code"], second["code"]] == [0, 0]
        assert_overloaded(create(client), "2 tasks waiting")
        client.post("/v1/media/cancel", json={"task_id": first["id"]})
        assert create(client).json()["code"] == 0


def test_past_its_daily_spend_a_key_is_refused_and_a_refund_gives_room(server):
    key = server.create_key("--balance", "10", "--daily-spend", "2")
    with client_for(server, key) as client:
        first, second = create(client).json(), create(client).json()
        assert [first["code"], second["code"]] == [0, 0]
        assert_overloaded(create(client), "spend 2 a day")
        assert client.get("/v1/balance").json()["balance"] == 8  # the refused one cost nothing
        client.post("/v1/media/cancel", json={"task_id": first["id"]})  # refunded: not spent
        assert create(client).json()["code"] == 0


def test_keys_update_changes_a_limit_that_running_servers_then_apply(server):
    key = server.create_key("--max-waiting", "1")
    with client_for(server, key) as client:
        assert create(client).json()["code"] == 0
        assert_overloaded(create(client), "1 tasks waiting")
        listed = json.loads(server.cli("keys", "update", key, "--max-waiting", "5").stdout)
        assert listed["max_waiting"] == 5
        within_key_cache(lambda: create(client).json()["code"] == 0, "the raised limit")


def test_server_defaults_apply_to_keys_without_limits_of_their_own(tmp_path):
    catalog = write_catalog(tmp_path / "c.toml", {"priced": {"engine": "tiny", "native_size": 256}})
    darkroom = Darkroom(tmp_path, catalog)
    darkroom.env["DARKROOM_KEY_MAX_WAITING"] = "1"
    darkroom.start_server("--workers", "0")
    try:
        plain, own = darkroom.create_key(), darkroom.create_key("--max-waiting", "3")
        with client_for(darkroom, plain) as client, client_for(darkroom, own) as roomy:
            assert create(client).json()["code"] == 0
            assert_overloaded(create(client), "1 tasks waiting")
            assert [create(roomy).json()["code"] for _ in range(3)] == [0, 0, 0]
    finally:
        darkroom.stop()
