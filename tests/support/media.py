"""Plain HTTP helpers for the media API in tests."""

from __future__ import annotations

import httpx

from tests.support.servers import Darkroom


def client_for(server: Darkroom, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": key}, timeout=30)


def create(client: httpx.Client, model: str = "slow-sd") -> dict:
    task = client.post("/v1/media/create", json={"model": model, "prompt": "a cat"}).json()
    assert task["code"] == 0, task
    return task
