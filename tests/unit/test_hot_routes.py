"""The hot routes (api/hot.py): `darkroom serve` answers create and result before FastAPI's
stack, and those answers are the ones FastAPI's own routes give for the same requests (good
ones and every kind of refusal), while every other request still goes through FastAPI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from darkroom.api import create_app
from darkroom.api.hot import HotRoutes
from darkroom.api.media import HOT_ROUTES
from darkroom.config import Settings

ROOT = Path(__file__).resolve().parents[2]
BODY = {"model": "google-imagen-3", "ar": "16:9", "prompt": "a lighthouse at dusk"}
# Values that differ between two tasks however they were made.
VARYING = {"id", "created_at", "queue_position"}


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[tuple[FastAPI, HotRoutes, str, list[str]]]:
    """One Darkroom app, seen plainly and through HotRoutes; a key; and the paths that
    reached FastAPI's stack."""
    settings = Settings(data_dir=tmp_path, config=ROOT / "config" / "demo.toml", workers=0)
    app = create_app(settings, workers=0)
    through_fastapi: list[str] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        through_fastapi.append(f"{request.method} {request.url.path}")
        return await call_next(request)

    async with app.router.lifespan_context(app):
        darkroom = app.state.darkroom
        await darkroom.migrate()
        raw, _ = await darkroom.keys.create("hot")
        yield app, HotRoutes(app, HOT_ROUTES), raw, through_fastapi


async def ask(app: Any, method: str, path: str, key: str | None, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": key} if key else {}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers, **kwargs)


def comparable(response: httpx.Response) -> tuple[int, str, Any]:
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in VARYING}
    return response.status_code, response.headers["content-type"], body


async def test_create_and_result_answer_as_fastapis_own_routes_do(apps) -> None:
    app, hot, key, _ = apps
    created = (await ask(hot, "POST", "/v1/media/create", key, json=BODY)).json()
    assert created["code"] == 0
    unknown = "0" * 24
    requests: list[tuple[str, str, str | None, dict[str, Any]]] = [
        ("POST", "/v1/media/create", key, {"json": BODY}),
        ("POST", "/v1/media/create", None, {"json": BODY}),  # code 2
        ("POST", "/v1/media/create", "not-a-key", {"json": BODY}),
        ("POST", "/v1/media/create", key, {"content": b"{not json"}),  # code 3
        ("POST", "/v1/media/create", key, {"json": {**BODY, "ar": "5:1"}}),
        ("POST", "/v1/media/create", key, {"json": {**BODY, "model": "no-such-model"}}),
        ("GET", f"/v1/media/result?task_id={created['id']}", key, {}),
        ("POST", "/v1/media/result", key, {"json": {"task_id": created["id"]}}),
        ("GET", f"/v1/media/result?task_id={unknown}", key, {}),  # code 4
        ("GET", "/v1/media/result?task_id=short", key, {}),
        ("GET", "/v1/media/result", key, {}),
        ("GET", f"/v1/media/result?task_id={created['id']}", None, {}),
    ]
    for method, path, with_key, kwargs in requests:
        fast = await ask(hot, method, path, with_key, **kwargs)
        plain = await ask(app, method, path, with_key, **kwargs)
        assert comparable(fast) == comparable(plain), (method, path, fast.text, plain.text)
    codes = [json.loads((await ask(hot, m, p, k, **kw)).text)["code"] for m, p, k, kw in requests]
    assert codes == [0, 2, 2, 3, 3, 3, 0, 0, 4, 3, 3, 2]


async def test_only_the_hot_routes_skip_fastapis_stack(apps) -> None:
    _, hot, key, through_fastapi = apps
    task = (await ask(hot, "POST", "/v1/media/create", key, json=BODY)).json()
    await ask(hot, "GET", f"/v1/media/result?task_id={task['id']}", key)
    assert through_fastapi == []
    await ask(hot, "POST", "/v1/media/cancel", key, json={"task_id": task["id"]})
    await ask(hot, "GET", "/v1/media/result/", key)  # not the same path: FastAPI's to answer
    await ask(hot, "PUT", "/v1/media/result", key)
    assert through_fastapi == [
        "POST /v1/media/cancel",
        "GET /v1/media/result/",
        "PUT /v1/media/result",
    ]


async def test_a_bug_in_a_hot_route_is_code_1_without_its_details(apps) -> None:
    app, _, key, _ = apps

    async def bug(_request: Request) -> Any:
        raise RuntimeError("a secret detail of the bug")

    hot = HotRoutes(app, {("GET", "/v1/media/bug"): bug})
    answer = await ask(hot, "GET", "/v1/media/bug", key)
    assert answer.status_code == 200 and answer.json()["code"] == 1
    assert "secret" not in answer.text
