"""POST /v1/media/cancel against real servers: an idle task fails at once with "canceled" and
gets its credit back; a processing one stops at its next denoising step (diffusers and tiny
engines); a finished one is left as it is; errors as for /result."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import httpx
import pytest

from tests.support.catalogs import SLOW_STEPS, slow_catalog
from tests.support.media import client_for, create
from tests.support.servers import Darkroom, running, wait_for_status


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    """No workers: every task stays idle until canceled."""
    root = tmp_path_factory.mktemp("cancel-idle")
    with running(root, slow_catalog(root), "--workers", "0") as server:
        yield server


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    root = tmp_path_factory.mktemp("cancel-busy")
    with running(root, slow_catalog(root), "--workers", "1") as server:
        yield server


def wait_progress(client: httpx.Client, task_id: str, timeout: float = 120) -> dict:
    """The task once its engine is denoising (progress recorded above 0)."""
    task = wait_for_status(client, task_id, ("processing",), timeout)
    while task["status"] == "processing" and task["progress"] < 1:
        task = client.post("/v1/media/result", json={"task_id": task_id}).json()
    return task


def test_canceling_an_idle_task_fails_it_at_once_and_refunds_its_credit(idle_server):
    key = idle_server.create_key("--credits", "1")
    with client_for(idle_server, key) as client:
        task = create(client)
        assert (
            client.post("/v1/media/create", json={"model": "slow-sd", "prompt": "x"}).json()["code"]
            == 5
        )  # no credits left
        canceled = client.post("/v1/media/cancel", json={"task_id": task["id"]}).json()
        assert canceled["status"] == "failed" and canceled["message"] == "canceled"
        assert canceled["url"] is None and canceled["error"] == "canceled"
        assert list(canceled) == [
            "code", "id", "model", "prompt", "created_at", "status", "url", "message", "error"
        ]  # fmt: skip
        again = client.post("/v1/media/result", json={"task_id": task["id"]}).json()
        assert again == canceled
        create(client)  # the credit came back


def test_cancel_takes_the_task_id_in_the_query_string_too(idle_server):
    with client_for(idle_server, idle_server.create_key()) as client:
        task = create(client)
        canceled = client.post("/v1/media/cancel", params={"task_id": task["id"]}).json()
        assert (canceled["id"], canceled["status"]) == (task["id"], "failed")


def test_cancel_errors_use_the_result_codes(idle_server):
    owner = idle_server.create_key()
    with (
        client_for(idle_server, owner) as client,
        client_for(idle_server, idle_server.create_key()) as stranger,
    ):
        task = create(client)
        assert stranger.post("/v1/media/cancel", json={"task_id": task["id"]}).json()["code"] == 4
        assert (
            client.post("/v1/media/result", json={"task_id": task["id"]}).json()["status"] == "idle"
        )  # another key's cancel did nothing
        assert client.post("/v1/media/cancel", json={"task_id": "f" * 24}).json()["code"] == 4
        invalid = client.post("/v1/media/cancel", json={"task_id": "nope"}).json()
        assert invalid["code"] == 3 and invalid["issues"][0]["path"] == ["task_id"]
        assert client.post("/v1/media/cancel", json={}).json()["code"] == 3
        assert client.get("/v1/media/cancel", params={"task_id": task["id"]}).json()["code"] == 99
    bad_key = httpx.post(
        f"{idle_server.base_url}/v1/media/cancel",
        json={"task_id": task["id"]},
        headers={"Authorization": "not-a-key"},
    ).json()
    assert bad_key["code"] == 2


@pytest.mark.parametrize("model", ["slow-sd", "slow-tiny"])
def test_canceling_a_processing_task_stops_it_at_the_next_step(busy_server, model):
    with client_for(busy_server, busy_server.create_key()) as client:
        task = create(client, model)
        running_task = wait_progress(client, task["id"])
        assert running_task["status"] == "processing"
        answer = client.post("/v1/media/cancel", json={"task_id": task["id"]}).json()
        assert answer["code"] == 0 and answer["status"] in ("processing", "failed")
        ended = wait_for_status(client, task["id"], timeout=120)
        assert (ended["status"], ended["message"], ended["url"]) == ("failed", "canceled", None)
    interrupted = [
        json.loads(line)
        for line in busy_server.logs().splitlines()
        if '"event": "batch interrupted"' in line and task["id"] in line
    ]
    assert len(interrupted) == 1 and interrupted[0]["step"] < SLOW_STEPS


def test_canceling_a_done_task_leaves_it_done(busy_server):
    with client_for(busy_server, busy_server.create_key()) as client:
        task = create(client, "quick-sd")
        done = wait_for_status(client, task["id"])
        assert done["status"] == "done"
        answer = client.post("/v1/media/cancel", json={"task_id": task["id"]}).json()
        assert answer == done
        assert httpx.get(answer["url"]).status_code == 200


def test_a_canceled_task_whose_worker_died_is_not_run_again(tmp_path):
    server = Darkroom(tmp_path, slow_catalog(tmp_path), lease_seconds=2)
    server.start_server("--workers", "0")
    try:
        with client_for(server, server.create_key()) as client:
            doomed = server.start_worker()
            task = create(client)
            wait_for_status(client, task["id"], ("processing",), timeout=120)
            doomed.send_signal(signal.SIGKILL)
            doomed.wait()
            batches_before = _batch_lines(server)
            answer = client.post("/v1/media/cancel", json={"task_id": task["id"]}).json()
            assert answer["status"] == "processing"  # only its lease can tell it is orphaned
            server.start_worker()  # sweeps expired leases
            ended = wait_for_status(client, task["id"], timeout=120)
            assert (ended["status"], ended["message"]) == ("failed", "canceled")
        assert _batch_lines(server) == batches_before  # the second worker never ran it
    finally:
        server.stop()


def _batch_lines(server: Darkroom) -> list[str]:
    return [line for line in server.logs().splitlines() if '"event": "batch"' in line]
