"""Idempotent creates over real servers, on SQLite and on PostgreSQL: the `Idempotency-Key`
header (an extension) makes a retried create or generate answer the task the first one queued,
charged once; the same key with another body is code 3; 20 clients racing with one key make one
task (tasks/admission.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import backend_named
from tests.support.backends import BACKENDS
from tests.support.catalogs import write_catalog
from tests.support.media import client_for

BODY = {"model": "priced", "prompt": "a lighthouse at dusk"}


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp(f"idempotency-{request.param}")
    catalog = write_catalog(
        root / "catalog.toml", {"priced": {"engine": "tiny", "native_size": 256, "price": 1}}
    )
    with backend_named(request, request.param).running(root, catalog) as darkroom:
        yield darkroom


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with client_for(server, server.create_key("--balance", "5")) as http:
        yield http


def balance(client: httpx.Client) -> float:
    return client.get("/v1/balance").json()["balance"]


def create(client: httpx.Client, key: str | None, body: dict = BODY) -> dict:
    headers = {} if key is None else {"Idempotency-Key": key}
    return client.post("/v1/media/create", json=body, headers=headers).json()


def test_a_retried_create_answers_the_first_task_and_is_charged_once(client):
    first = create(client, "order-1")
    again = create(client, "order-1")
    assert first["code"] == 0 and again["code"] == 0
    assert again["id"] == first["id"]
    assert balance(client) == 4
    # Without the header, or with another key, each create is a task of its own.
    assert create(client, None)["id"] != first["id"]
    assert create(client, "order-2")["id"] != first["id"]
    assert balance(client) == 2


def test_the_same_key_with_another_body_is_code_3(client):
    assert create(client, "order-1")["code"] == 0
    answer = create(client, "order-1", {**BODY, "prompt": "another prompt"})
    assert answer["code"] == 3
    assert "Idempotency-Key" in answer["message"] and "another request body" in answer["message"]
    assert balance(client) == 4


def test_a_malformed_key_is_code_3(client):
    for bad in ("", "x" * 256, "naïve"):
        answer = client.post(
            "/v1/media/create",
            json=BODY,
            headers={"Idempotency-Key": bad.encode()},
        ).json()
        assert answer["code"] == 3 and "Idempotency-Key" in answer["message"], bad
    assert balance(client) == 5


def test_twenty_clients_racing_with_one_key_make_one_task(server):
    key = server.create_key("--balance", "5")

    async def race() -> list[dict]:
        async def one() -> dict:
            async with httpx.AsyncClient(
                base_url=server.base_url, headers={"Authorization": key}, timeout=60
            ) as http:
                answer = await http.post(
                    "/v1/media/create", json=BODY, headers={"Idempotency-Key": "race"}
                )
                return answer.json()

        return await asyncio.gather(*(one() for _ in range(20)))

    answers = asyncio.run(race())
    assert [a["code"] for a in answers] == [0] * 20
    assert len({a["id"] for a in answers}) == 1
    with client_for(server, key) as client:
        assert balance(client) == 4
        listed = client.get("/v1/media/tasks").json()["data"]
        assert [t["id"] for t in listed] == [answers[0]["id"]]


def test_a_retried_generate_answers_the_same_task(client):
    body = {**BODY, "prompt": "a generated lighthouse"}
    headers = {"Idempotency-Key": "generate-1"}
    first = client.post("/v1/media/generate", json=body, headers=headers, timeout=120).json()
    again = client.post("/v1/media/generate", json=body, headers=headers, timeout=120).json()
    assert first["code"] == 0 and again["id"] == first["id"]
    assert again["status"] == "done" and again["url"]
    assert balance(client) == 4
