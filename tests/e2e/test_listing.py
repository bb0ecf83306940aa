"""The per-model rules and the listing extensions over the real server, on SQLite and on
PostgreSQL: `GET /v1/media/models` lists what a key may use with each model's rules, create
holds a model to its own ratios and prompt cap, and `GET /v1/media/tasks` pages through a key's
tasks newest first, every task exactly once, never another key's.

The server has a catalog of its own (the shared test catalog's model list is what other tests
expect `{}` to name) and no workers, so the tasks stay as they were created while they are
listed."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from darkroom.client import AsyncClient, Client, InvalidRequest, TaskPage
from tests.conftest import backend_named
from tests.support.backends import BACKENDS
from tests.support.catalogs import write_catalog
from tests.support.servers import Darkroom

FIVE = ["1:1", "16:9", "9:16", "4:3", "3:4"]
SEVEN = [*FIVE, "21:9", "9:21"]
CATALOG = {
    "five-ratios": {"engine": "tiny", "native_size": 256, "ratios": FIVE},
    "short-prompts": {"engine": "tiny", "native_size": 256, "max_prompt": 400},
    "wide-edits": {
        "engine": "tiny",
        "native_size": 256,
        "ratios": ["16:9", "21:9"],
        "takes_images": True,
    },
}


@pytest.fixture(scope="module", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Darkroom]:
    root = tmp_path_factory.mktemp(f"listing-{request.param}")
    catalog = write_catalog(root / "models.toml", CATALOG)
    data_dir = root / "data"
    data_dir.mkdir()
    with backend_named(request, request.param).running(data_dir, catalog, workers=0) as server:
        yield server


@pytest.fixture(scope="module")
def owner_key(server: Darkroom) -> str:
    return server.create_key("--name", "listing")


def get(server: Darkroom, key: str, path: str, **params: str) -> dict:
    response = httpx.get(
        f"{server.base_url}{path}", params=params, headers={"Authorization": key}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def create(server: Darkroom, key: str, **body: object) -> dict:
    response = httpx.post(
        f"{server.base_url}/v1/media/create", json=body, headers={"Authorization": key}
    )
    assert response.status_code == 200, response.text
    return response.json()


def entry(model_id: str, ratios: list[str], *, max_images: int = 0, max_prompt: int = 4000) -> dict:
    return {
        "id": model_id,
        "object": "model",
        "kind": "image",
        "ratios": ratios,
        "default_ratio": ratios[0],
        "max_images": max_images,
        "max_prompt": max_prompt,
        "price": 0,
    }


# -- GET /v1/media/models --------------------------------------------------------------------


def test_models_lists_every_model_with_its_rules_sorted_by_id(
    server: Darkroom, owner_key: str
) -> None:
    assert get(server, owner_key, "/v1/media/models") == {
        "code": 0,
        "data": [
            entry("five-ratios", FIVE),
            entry("short-prompts", SEVEN, max_prompt=400),
            entry("wide-edits", ["16:9", "21:9"], max_images=1),
        ],
    }


def test_models_lists_only_what_a_restricted_key_may_use(server: Darkroom) -> None:
    key = server.create_key("--models", "wide-edits,five-ratios")
    answer = get(server, f"Bearer {key}", "/v1/media/models")
    assert [model["id"] for model in answer["data"]] == ["five-ratios", "wide-edits"]


@pytest.mark.parametrize("path", ["/v1/media/models", "/v1/media/tasks"])
def test_a_listing_without_a_valid_key_is_code_2(server: Darkroom, path: str) -> None:
    assert get(server, "dk_not-a-real-key", path)["code"] == 2
    response = httpx.get(f"{server.base_url}{path}")
    assert response.status_code == 200 and response.json()["code"] == 2


@pytest.mark.parametrize("path", ["/v1/media/models", "/v1/media/tasks"])
def test_a_listing_is_get_only_other_methods_are_code_99(server: Darkroom, path: str) -> None:
    response = httpx.post(f"{server.base_url}{path}", json={})
    assert response.status_code == 200 and response.json()["code"] == 99


# -- the per-model rules at create ----------------------------------------------------------------


def test_a_ratio_outside_the_models_subset_is_code_3_listing_the_subset(
    server: Darkroom, owner_key: str
) -> None:
    answer = create(server, owner_key, model="five-ratios", prompt="a harbour", ar="21:9")
    assert answer["code"] == 3
    [issue] = answer["issues"]
    assert issue["path"] == ["ar"] and issue["options"] == FIVE
    assert issue["expected"] == " | ".join(f"'{ratio}'" for ratio in FIVE)
    assert create(server, owner_key, model="five-ratios", prompt="a harbour", ar="3:4")["code"] == 0


def test_a_model_without_1_1_takes_its_first_ratio_by_default(
    server: Darkroom, owner_key: str
) -> None:
    task = create(server, owner_key, model="wide-edits", prompt="a harbour")
    assert task["code"] == 0 and task["prompt"] == "a harbour"
    missing_ratio = create(server, owner_key, model="wide-edits", prompt="a harbour", ar="1:1")
    assert missing_ratio["issues"][0]["options"] == ["16:9", "21:9"]


def test_a_prompt_over_the_models_cap_is_code_3_too_big_naming_the_cap(
    server: Darkroom, owner_key: str
) -> None:
    answer = create(server, owner_key, model="short-prompts", prompt="x" * 401)
    assert answer["code"] == 3
    [issue] = answer["issues"]
    assert issue["code"] == "too_big" and issue["path"] == ["prompt"]
    assert issue["maximum"] == 400 and "400" in answer["message"]
    assert create(server, owner_key, model="short-prompts", prompt="x" * 400)["code"] == 0
    # Another model keeps the spec's 4,000.
    assert create(server, owner_key, model="five-ratios", prompt="x" * 401)["code"] == 0


# -- GET /v1/media/tasks ------------------------------------------------------------------------


def pages(server: Darkroom, key: str, limit: int) -> list[dict]:
    """Every answer of the listing, following next_cursor to the end."""
    answers = [get(server, key, "/v1/media/tasks", limit=str(limit))]
    while answers[-1]["next_cursor"] is not None:
        cursor = answers[-1]["next_cursor"]
        answers.append(get(server, key, "/v1/media/tasks", limit=str(limit), cursor=cursor))
    return answers


def test_tasks_pages_reach_every_task_once_newest_first(server: Darkroom) -> None:
    key = server.create_key("--name", "pager")
    made = [create(server, key, model="five-ratios", prompt=f"photo {n}")["id"] for n in range(7)]
    answers = pages(server, key, limit=3)
    assert [len(answer["data"]) for answer in answers] == [3, 3, 1]
    listed = [task["id"] for answer in answers for task in answer["data"]]
    assert listed == made[::-1]
    assert all(answer["code"] == 0 for answer in answers)


def test_a_listed_task_is_the_result_answer_without_queue_position(server: Darkroom) -> None:
    key = server.create_key("--name", "one-task")
    task_id = create(server, key, model="five-ratios", prompt="a pier", ar="16:9")["id"]
    [listed] = get(server, key, "/v1/media/tasks")["data"]
    result = get(server, key, "/v1/media/result", task_id=task_id)
    assert "queue_position" in result
    del result["queue_position"]
    assert listed == result


def test_another_keys_tasks_never_appear(server: Darkroom, owner_key: str) -> None:
    mine = create(server, owner_key, model="five-ratios", prompt="mine")["id"]
    assert get(server, owner_key, "/v1/media/tasks", limit="1")["data"][0]["id"] == mine
    stranger = server.create_key("--name", "stranger")
    empty = {"code": 0, "data": [], "next_cursor": None}
    assert get(server, stranger, "/v1/media/tasks") == empty
    # A cursor names a position, not a key: another key following it still sees only its own.
    cursor = get(server, owner_key, "/v1/media/tasks", limit="1")["next_cursor"]
    assert cursor is not None
    assert get(server, stranger, "/v1/media/tasks", cursor=cursor) == empty


@pytest.mark.parametrize(
    ("limit", "issue"),
    [
        ("0", {"code": "too_small", "minimum": 1}),
        ("101", {"code": "too_big", "maximum": 100}),
        ("ten", {"code": "invalid_type", "expected": "number", "received": "nan"}),
        ("2.5", {"code": "invalid_type", "expected": "integer", "received": "float"}),
        ("", {"code": "invalid_type", "expected": "number", "received": "nan"}),
    ],
)
def test_a_bad_limit_is_code_3_on_limit(
    server: Darkroom, owner_key: str, limit: str, issue: dict
) -> None:
    answer = get(server, owner_key, "/v1/media/tasks", limit=limit)
    assert answer["code"] == 3
    [found] = answer["issues"]
    assert found["path"] == ["limit"] and found.items() >= issue.items()


def encoded(position: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


TASK_ID = "6880f043e6060500018821de"
MALFORMED_CURSORS = [
    "not-a-cursor",
    "%%%",
    encoded([]),
    encoded({"at": 1.0, "id": TASK_ID}),
    encoded([1.0, "abc"]),
    encoded(["yesterday", TASK_ID]),
    encoded([True, TASK_ID]),
    encoded([float("inf"), TASK_ID]),
    encoded([1.0, TASK_ID, 3]),
]


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS)
def test_a_malformed_cursor_is_code_3_on_cursor(
    server: Darkroom, owner_key: str, cursor: str
) -> None:
    answer = get(server, owner_key, "/v1/media/tasks", cursor=cursor)
    assert answer["code"] == 3
    assert [issue["path"] for issue in answer["issues"]] == [["cursor"]]


def test_the_listing_ignores_tasks_made_after_the_first_page(server: Darkroom) -> None:
    key = server.create_key("--name", "busy")
    made = [create(server, key, model="five-ratios", prompt=f"early {n}")["id"] for n in range(4)]
    first = get(server, key, "/v1/media/tasks", limit="2")
    create(server, key, model="five-ratios", prompt="late")
    rest = get(server, key, "/v1/media/tasks", limit="2", cursor=first["next_cursor"])
    listed = [task["id"] for task in first["data"] + rest["data"]]
    assert listed == made[::-1] and rest["next_cursor"] is None


# -- the Python client ----------------------------------------------------------------------------


def test_the_client_reads_a_restricted_keys_models(server: Darkroom) -> None:
    key = server.create_key("--models", "short-prompts")
    with Client(server.base_url, key) as client:
        [model] = client.models()
    assert (model.id, model.max_prompt, model.ratios, model.price) == (
        "short-prompts",
        400,
        tuple(SEVEN),
        0,
    )


def test_the_sync_and_async_clients_page_through_every_task(server: Darkroom) -> None:
    key = server.create_key("--name", "client-pager")
    with Client(server.base_url, key) as client:
        made = [client.create(f"boat {n}", model="five-ratios").id for n in range(5)]
        assert client_pages(client.tasks) == made[::-1]

    async def listed_async() -> list[str]:
        async with AsyncClient(server.base_url, key) as client:
            first = await client.tasks(limit=3)
            rest = await client.tasks(limit=3, cursor=first.next_cursor)
            assert rest.next_cursor is None
            return [task.id for task in first.tasks + rest.tasks]

    assert asyncio.run(listed_async()) == made[::-1]


def client_pages(tasks: Callable[..., TaskPage]) -> list[str]:
    """Every task id the sync client's listing reaches, two at a time."""
    page = tasks(limit=2)
    listed = [task.id for task in page.tasks]
    while page.next_cursor is not None:
        page = tasks(limit=2, cursor=page.next_cursor)
        listed += [task.id for task in page.tasks]
    return listed


def test_the_client_raises_invalid_request_for_a_bad_limit(
    server: Darkroom, owner_key: str
) -> None:
    with Client(server.base_url, owner_key) as client, pytest.raises(InvalidRequest) as caught:
        client.tasks(limit=500)
    assert caught.value.issues[0]["path"] == ["limit"]
