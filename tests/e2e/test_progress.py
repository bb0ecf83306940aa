"""Progress and queue position in /v1/media/result, beside the spec's fields: `progress` (0 to
100) while processing, `queue_position` while idle, neither once finished."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.catalogs import slow_catalog
from tests.support.media import client_for, create
from tests.support.servers import Darkroom, running, wait_for_status

SPEC_KEYS = ["code", "id", "model", "prompt", "created_at", "status", "url", "cost"]


@pytest.fixture(scope="module")
def idle_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    root = tmp_path_factory.mktemp("progress-idle")
    with running(root, slow_catalog(root), "--workers", "0") as server:
        yield server


def test_a_processing_task_reports_progress_between_1_and_99(tmp_path):
    with (
        running(tmp_path, slow_catalog(tmp_path), "--workers", "1") as server,
        client_for(server, server.create_key()) as client,
    ):
        task = create(client, "slow-sd")
        seen: list[int] = []
        current = wait_for_status(client, task["id"], ("processing",), timeout=120)
        while current["status"] == "processing" and not any(1 <= p <= 99 for p in seen):
            assert list(current) == [*SPEC_KEYS, "progress"]
            seen.append(current["progress"])
            current = client.post("/v1/media/result", json={"task_id": task["id"]}).json()
        assert any(1 <= p <= 99 for p in seen), seen
        assert seen == sorted(seen)  # it only moves forward
        client.post("/v1/media/cancel", json={"task_id": task["id"]})
        wait_for_status(client, task["id"])


def test_idle_tasks_report_their_place_in_the_queue(idle_server):
    with client_for(idle_server, idle_server.create_key()) as client:
        first = create(client)
        base = client.post("/v1/media/result", json={"task_id": first["id"]}).json()
        assert list(base) == [*SPEC_KEYS, "queue_position"]
        ahead = base["queue_position"]  # other tests' tasks may be queued already
        second, third = create(client), create(client)
        positions = [
            client.get("/v1/media/result", params={"task_id": t["id"]}).json()["queue_position"]
            for t in (first, second, third)
        ]
        assert positions == [ahead, ahead + 1, ahead + 2]
        client.post("/v1/media/cancel", json={"task_id": first["id"]})
        third_now = client.post("/v1/media/result", json={"task_id": third["id"]}).json()
        assert third_now["queue_position"] == ahead + 1


def test_create_answers_the_spec_fields_only(idle_server):
    with client_for(idle_server, idle_server.create_key()) as client:
        assert list(create(client)) == SPEC_KEYS
