"""POST /v1/media/generate against real servers: it answers the finished task's link or file,
a failed task's error, a task still running at the generate timeout as it stands; it waits on
a notification (NOTIFY across processes on PostgreSQL) rather than on fast polls; and a client
that goes away neither cancels nor loses its task."""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.support.backends import BACKENDS, POSTGRES_S3, Backend
from tests.support.catalogs import CONFIGS, slow_catalog
from tests.support.media import client_for
from tests.support.servers import Darkroom, running, wait_for_status

GENERATE_KEYS = ["code", "id", "model", "status", "result", "url", "created_at"]
QUICK = {"model": "google-imagen-3", "prompt": "a lighthouse at dusk", "ar": "16:9"}
SQUARE = {"model": "google-imagen-3", "prompt": "a lighthouse at dusk"}
WAIT = 120  # a bound for a hung test (seconds), never a measure
SLOW_POLLS = {"poll_seconds": 600, "listen_poll_seconds": 600}  # far longer than WAIT


def generate(client: httpx.Client, **body: object) -> dict:
    response = client.post("/v1/media/generate", json=body, timeout=WAIT)
    assert response.status_code == 200
    return response.json()


def without_cost(answer: dict) -> list[str]:
    """The answer's keys in order, less `cost` (present once tasks carry a cost)."""
    return [key for key in answer if key != "cost"]


def task_ids(darkroom: Darkroom) -> list[str]:
    """The installation's task ids, read from its database: a client whose generate call was
    cut off never learned its task's id."""
    url = darkroom.env.get("DARKROOM_DATABASE_URL")
    if url is None:
        with sqlite3.connect(darkroom.data_dir / "darkroom.db") as db:
            return [row[0] for row in db.execute("SELECT id FROM tasks ORDER BY enqueued_at")]

    async def read() -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            return [r["id"] for r in await conn.fetch("SELECT id FROM tasks ORDER BY enqueued_at")]
        finally:
            await conn.close()

    return asyncio.run(read())


def backend_of(request: pytest.FixtureRequest, name: str) -> Backend:
    if name == POSTGRES_S3:
        return Backend(name, request.getfixturevalue("postgres"), request.getfixturevalue("s3"))
    return Backend(name)


@pytest.fixture(scope="module", params=BACKENDS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The test catalog with one worker in the API process, on each backend. Its polls are
    longer than any test may take, so each answer comes from a notification: the worker's
    announcement that the task ended (and, for the worker, that a task was queued)."""
    backend = backend_of(request, request.param)
    folder = tmp_path_factory.mktemp(request.param)
    with backend.running(folder, CONFIGS / "test.toml", **SLOW_POLLS) as darkroom:
        yield darkroom


@pytest.fixture
def client(server: Darkroom) -> Iterator[httpx.Client]:
    with client_for(server, server.create_key()) as http:
        yield http


# -- answers ---------------------------------------------------------------------------------------


def test_generate_answers_the_done_task_with_result_equal_to_a_downloadable_url(client):
    answer = generate(client, **QUICK)
    assert without_cost(answer) == GENERATE_KEYS
    assert (answer["code"], answer["status"], answer["model"]) == (0, "done", "google-imagen-3")
    assert answer["result"] == answer["url"]
    download = httpx.get(answer["url"])
    assert download.status_code == 200 and download.content[8:12] == b"WEBP"
    assert int(answer["id"][:8], 16) == answer["created_at"]
    stored = client.get("/v1/media/result", params={"task_id": answer["id"]}).json()
    assert (stored["status"], stored["url"]) == ("done", answer["url"])  # an ordinary task


def test_b64_json_holds_the_stored_file_instead_of_result(client):
    answer = generate(client, **QUICK, response_format="b64_json")
    assert without_cost(answer) == [
        "code", "id", "model", "status", "b64_json", "url", "created_at"
    ]  # fmt: skip
    assert base64.b64decode(answer["b64_json"]) == httpx.get(answer["url"]).content


def test_size_is_accepted_and_ignored_by_models_without_a_scale(client):
    plain, scaled = generate(client, **QUICK, seed=7), generate(client, **QUICK, seed=7, size="4K")
    assert scaled["status"] == "done"
    assert httpx.get(scaled["url"]).content == httpx.get(plain["url"]).content


def test_an_unknown_response_format_or_size_is_code_3_with_an_issue_on_it(server, client):
    before = len(task_ids(server))
    bad_format = generate(client, **QUICK, response_format="png")
    assert bad_format["code"] == 3
    assert [i["path"] for i in bad_format["issues"]] == [["response_format"]]
    bad_both = generate(client, model="google-imagen-3", response_format=1, size="8K")
    assert bad_both["code"] == 3
    assert sorted(i["path"][0] for i in bad_both["issues"]) == ["prompt", "response_format", "size"]
    assert len(task_ids(server)) == before  # refused requests queue nothing


def test_generate_refuses_what_create_refuses_with_the_same_codes(client):
    assert generate(client, model="nope", prompt="x")["code"] == 3
    assert generate(client, model="google-imagen-3", prompt="a forbiddenword")["code"] == 1002
    assert generate(client, **{**QUICK, "ar": "2:1"})["code"] == 3


# -- waiting ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    """One worker, slow models, and a generate timeout far shorter than their tasks."""
    root = tmp_path_factory.mktemp("generate-slow")
    with running(root, slow_catalog(root), generate_timeout_seconds=1) as darkroom:
        yield darkroom


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    """No workers: every task stays idle until canceled; no poll within a test."""
    root = tmp_path_factory.mktemp("generate-idle")
    with running(root, slow_catalog(root), "--workers", "0", **SLOW_POLLS) as darkroom:
        yield darkroom


def test_a_task_still_running_at_the_timeout_is_answered_as_it_stands(slow_server):
    with client_for(slow_server, slow_server.create_key()) as client:
        answer = generate(client, model="slow-tiny", prompt="a cat")
        assert answer["code"] == 0 and answer["status"] in ("idle", "processing")
        assert (answer["result"], answer["url"]) == (None, None)
        assert without_cost(answer) == GENERATE_KEYS
        later = client.get("/v1/media/result", params={"task_id": answer["id"]}).json()
        assert later["code"] == 0 and later["status"] in ("idle", "processing")
        client.post("/v1/media/cancel", json={"task_id": answer["id"]})  # frees the worker


def test_a_task_canceled_while_generate_waits_answers_code_1_with_its_message(idle_server):
    with client_for(idle_server, idle_server.create_key()) as client:
        answers: list[dict] = []
        waiting = threading.Thread(
            target=lambda: answers.append(generate(client, model="slow-tiny", prompt="a cat"))
        )
        waiting.start()
        task_id = wait_for_task(idle_server)
        canceled = client.post("/v1/media/cancel", json={"task_id": task_id}).json()
        assert canceled["status"] == "failed"
        waiting.join(WAIT)
        # Answered after the cancel, before any poll or the generate timeout: the cancel
        # woke the waiting call.
        assert answers == [{"code": 1, "message": "Internal server error. canceled"}]


def wait_for_task(darkroom: Darkroom, count: int = 1) -> str:
    """The id of the installation's `count`th task, once it exists."""
    deadline = time.monotonic() + WAIT
    while len(ids := task_ids(darkroom)) < count:
        assert time.monotonic() < deadline, "the generate call queued no task"
        time.sleep(0.05)
    return ids[count - 1]


@pytest.fixture(params=BACKENDS)
def api_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Darkroom]:
    """An API node without workers, on each backend; tests start `darkroom worker` beside it."""
    backend = backend_of(request, request.param)
    with backend.running(tmp_path, CONFIGS / "test.toml", "--workers", "0") as darkroom:
        yield darkroom


def test_a_client_that_goes_away_neither_cancels_nor_loses_its_task(api_node):
    with client_for(api_node, api_node.create_key()) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/v1/media/generate", json=QUICK, timeout=1)
        task_id = wait_for_task(api_node)
        wait_for_log(api_node, "generate client left")  # the server stopped waiting for it
        left = client.get("/v1/media/result", params={"task_id": task_id}).json()
        assert left["status"] == "idle"  # queued, not canceled, when its client left
        api_node.start_worker()
        done = wait_for_status(client, task_id, timeout=WAIT)
        assert done["status"] == "done" and httpx.get(done["url"]).status_code == 200
        # Workers in another process: on SQLite the safety poll finds the end, on
        # PostgreSQL the NOTIFY does.
        assert generate(client, **QUICK)["status"] == "done"
    assert "Traceback" not in api_node.logs()


def test_a_generate_task_shares_an_engine_call_with_created_tasks(tmp_path):
    with running(tmp_path, CONFIGS / "test.toml", "--workers", "0") as darkroom:
        key = darkroom.create_key()
        with client_for(darkroom, key) as client, client_for(darkroom, key) as other:
            answers: list[dict] = []
            waiting = threading.Thread(target=lambda: answers.append(generate(other, **SQUARE)))
            waiting.start()
            generated = wait_for_task(darkroom)
            created = client.post("/v1/media/create", json=SQUARE).json()["id"]
            darkroom.start_worker()  # its first claim finds both queued
            waiting.join(WAIT)
            assert [answer["status"] for answer in answers] == ["done"]
            assert wait_for_status(client, created)["status"] == "done"
        batches = [
            json.loads(line)["tasks"]
            for line in darkroom.logs().splitlines()
            if '"event": "batch"' in line
        ]
        assert [sorted(batch) for batch in batches] == [sorted([generated, created])]


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Darkroom]:
    """PostgreSQL, an API node without workers and a worker node, every poll ten minutes long
    and the generate timeout too: only a NOTIFY can wake anyone within a test."""
    backend = backend_of(request, POSTGRES_S3)
    darkroom = backend.installation(
        tmp_path, CONFIGS / "test.toml", generate_timeout_seconds=600, **SLOW_POLLS
    )
    try:
        darkroom.start_server("--workers", "0")
        darkroom.start_worker()
        yield darkroom
    finally:
        darkroom.stop()


def test_generate_with_workers_in_another_process_is_woken_by_notify(cluster):
    with client_for(cluster, cluster.create_key()) as client:
        wait_for_log(cluster, "listening for new tasks")  # the worker node's listener
        for _ in range(2):  # the second time the API node's listener is up for sure
            # Answered done within this call's timeout, before any poll of ten minutes could
            # have run: the worker's NOTIFY on the finished channel woke the waiting call.
            answer = client.post("/v1/media/generate", json=QUICK, timeout=WAIT).json()
            assert (answer["code"], answer["status"]) == (0, "done")


def wait_for_log(darkroom: Darkroom, text: str) -> None:
    deadline = time.monotonic() + WAIT
    while text not in darkroom.logs():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{darkroom.logs()[-3000:]}"
        time.sleep(0.1)
