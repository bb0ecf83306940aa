"""Retention on local disk: a link works until the retention period ends; then it is refused,
the sweeper deletes the file, and the task record still answers /result."""

from __future__ import annotations

import time

import httpx

from tests.conftest import CONFIGS
from tests.support.servers import running, wait_for_status

RETENTION_SECONDS = 3


def test_a_result_past_retention_is_refused_and_deleted_but_the_task_remains(tmp_path):
    with running(
        tmp_path,
        CONFIGS / "test.toml",
        retention_hours=RETENTION_SECONDS / 3600,
        sweep_seconds=0.5,
    ) as server:
        key = server.create_key()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            created = client.post(
                "/v1/media/create", json={"model": "tiny-512", "prompt": "short-lived"}
            ).json()
            task = wait_for_status(client, created["id"])
            assert task["status"] == "done"
            files = list((tmp_path / "files").rglob(f"{task['id']}_result.webp"))
            assert len(files) == 1
            assert httpx.get(task["url"]).status_code == 200

            deadline = time.monotonic() + 60
            while files[0].exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not files[0].exists(), "the sweeper did not delete the expired file"
            assert httpx.get(task["url"]).status_code in (403, 404)

            again = client.post("/v1/media/result", json={"task_id": task["id"]}).json()
            assert again["code"] == 0 and again["status"] == "done" and again["id"] == task["id"]
