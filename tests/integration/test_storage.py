"""Result storage on local disk and on S3 (a real SeaweedFS server): links that a plain GET
downloads, that expire with the retention and are refused when tampered with, and files that
the sweeper deletes. Tests taking `darkroom` or `backend` run once per backend."""

from __future__ import annotations

import asyncio
import secrets
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from darkroom.storage.s3 import S3Storage
from tests.support.backends import Backend
from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom, wait_for_status
from tests.support.services import S3Server

RETENTION_SECONDS = 3


def create_done(client: httpx.Client, **body: str) -> dict:
    body = {"model": "tiny-512", "prompt": "a harbour at night", **body}
    created = client.post("/v1/media/create", json=body).json()
    assert created["code"] == 0, created
    task = wait_for_status(client, created["id"])
    assert task["status"] == "done", task
    return task


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def signature_param(url: str) -> str:
    return "X-Amz-Signature" if "X-Amz-Signature" in url else "sig"


def expiry_param(url: str) -> str:
    return "X-Amz-Expires" if "X-Amz-Expires" in url else "expires"


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


def test_a_tampered_link_is_refused(client):
    url = create_done(client)["url"]
    sig = signature_param(url)
    signature = dict(parse_qsl(urlsplit(url).query))[sig]
    other = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert httpx.get(with_query(url, **{sig: other})).status_code == 403
    longer = str(int(dict(parse_qsl(urlsplit(url).query))[expiry_param(url)]) + 1)
    assert httpx.get(with_query(url, **{expiry_param(url): longer})).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403  # no signature at all
    # The same signature does not open another task's file.
    other_task = create_done(client)
    forged = url.replace(url.split("?")[0], other_task["url"].split("?")[0])
    assert httpx.get(forged).status_code == 403


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


def s3_storage(s3: S3Server, monkeypatch: pytest.MonkeyPatch, **options) -> S3Storage:
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    options.setdefault("retention_hours", 48)
    return S3Storage(f"unit-{secrets.token_hex(4)}", endpoint_url=s3.endpoint_url, **options)


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


def test_s3_put_link_and_delete(s3, monkeypatch):
    storage = s3_storage(s3, monkeypatch)
    asyncio.run(storage.prepare())
    key = f"exp48h/{secrets.token_hex(12)}_result.webp"
    asyncio.run(storage.put(key, b"RIFF....WEBP", "image/webp"))
    expires_at = time.time() + 3600
    url = storage.url(key, expires_at)
    assert url == storage.url(key, expires_at)  # a link is a function of key and expiry
    download = httpx.get(url)
    assert download.status_code == 200 and download.content == b"RIFF....WEBP"
    assert download.headers["content-type"] == "image/webp"
    asyncio.run(storage.delete([key, "exp48h/never-stored.webp"]))
    assert httpx.get(url).status_code == 404


def test_s3_links_use_the_public_url_when_clients_reach_s3_elsewhere(s3, monkeypatch):
    public = s3.endpoint_url.replace("127.0.0.1", "localhost")
    storage = s3_storage(s3, monkeypatch, public_url=public)
    asyncio.run(storage.prepare())
    key = "exp48h/public.webp"
    asyncio.run(storage.put(key, b"x", "image/webp"))
    url = storage.url(key, time.time() + 60)
    assert url.startswith(f"{public}/{storage.bucket}/{key}?")
    assert httpx.get(url).status_code == 200  # signed for the host the client uses
