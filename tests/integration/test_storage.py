"""Result storage as the API and the sweeper use it, on local disk and on S3 (a real SeaweedFS
server): a done task's link that a plain GET downloads and every poll repeats, links that die
with the retention as the sweeper deletes their files, and what only S3 has (its bucket's
lifecycle rule, links for a public endpoint). Tests taking `darkroom` or `backend` run once per
backend. What every storage backend must do (links, expiry, tampering, delete) is in
test_storage_conformance.py."""

from __future__ import annotations

import asyncio
import time

import httpx
from botocore.exceptions import ClientError

from tests.support.backends import Backend
from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom, wait_for_status
from tests.support.storages import s3_storage

RETENTION_SECONDS = 3


def create_done(client: httpx.Client, **body: str) -> dict:
    body = {"model": "tiny-512", "prompt": "a harbour at night", **body}
    created = client.post("/v1/media/create", json=body).json()
    assert created["code"] == 0, created
    task = wait_for_status(client, created["id"])
    assert task["status"] == "done", task
    return task


# -- through the API, on every backend ------------------------------------------------------------


def test_a_done_link_downloads_with_no_headers_and_is_the_same_on_every_poll(client):
    task = create_done(client)
    download = httpx.get(task["url"])
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/webp"
    assert download.content[:4] == b"RIFF" and download.content[8:12] == b"WEBP"
    again = client.get("/v1/media/result", params={"task_id": task["id"]}).json()
    assert again["url"] == task["url"]
    assert f"exp48h/{task['id']}_result.webp" in task["url"]


def test_a_link_past_retention_is_refused_and_its_file_deleted(backend: Backend, tmp_path):
    with backend.running(
        tmp_path,
        CONFIGS / "test.toml",
        retention_hours=RETENTION_SECONDS / 3600,
        sweep_seconds=0.5,
    ) as server:
        key = server.create_key()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            task = create_done(client)
            assert httpx.get(task["url"]).status_code == 200
            deadline = time.monotonic() + 60
            while stored(server, backend, task) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not stored(server, backend, task), "the sweeper did not delete the file"
            assert httpx.get(task["url"]).status_code in (403, 404)
            again = client.post("/v1/media/result", json={"task_id": task["id"]}).json()
            assert again["code"] == 0 and again["status"] == "done"


def stored(server: Darkroom, backend: Backend, task: dict) -> bool:
    """Whether the result file still exists, looked up in the storage itself."""
    name = f"{task['id']}_result.webp"
    if backend.s3 is None:
        return any(server.data_dir.joinpath("files").rglob(name))
    key = f"exp{RETENTION_SECONDS / 3600:g}h/{name}"
    try:
        backend.s3.client().head_object(Bucket=server.env["DARKROOM_S3_BUCKET"], Key=key)
        return True
    except ClientError:
        return False


# -- the S3 storage itself -------------------------------------------------------------------


def test_s3_creates_its_bucket_with_a_lifecycle_rule_and_keeps_other_rules(s3, monkeypatch):
    storage = s3_storage(s3, monkeypatch)
    asyncio.run(storage.prepare())
    client = s3.client()
    client.head_bucket(Bucket=storage.bucket)
    theirs = {"ID": "operators", "Filter": {"Prefix": "logs/"}, "Status": "Enabled"}
    theirs["Expiration"] = {"Days": 30}
    rules = client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]
    client.put_bucket_lifecycle_configuration(
        Bucket=storage.bucket, LifecycleConfiguration={"Rules": [*rules, theirs]}
    )
    asyncio.run(storage.prepare())  # a second node starting: nothing changes, nothing fails
    rules = client.get_bucket_lifecycle_configuration(Bucket=storage.bucket)["Rules"]
    ours = [r for r in rules if r["Filter"].get("Prefix") == "exp48h/"]
    assert len(ours) == 1 and ours[0]["Expiration"] == {"Days": 2}
    assert any(r["ID"] == "operators" for r in rules)


def test_s3_links_use_the_public_url_when_clients_reach_s3_elsewhere(s3, monkeypatch):
    public = s3.endpoint_url.replace("127.0.0.1", "localhost")
    storage = s3_storage(s3, monkeypatch, public_url=public)
    asyncio.run(storage.prepare())
    key = "exp48h/public.webp"
    asyncio.run(storage.put(key, b"x", "image/webp"))
    url = storage.url(key, time.time() + 60)
    assert url.startswith(f"{public}/{storage.bucket}/{key}?")
    assert httpx.get(url).status_code == 200  # signed for the host the client uses
