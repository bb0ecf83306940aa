"""The suite every storage backend runs, as every river driver runs one driver suite: local
disk (its links served by the API's /files route), S3 (a real SeaweedFS server) and
darkroom.testing's in-memory storage. What the worker and the API rely on, and nothing of how a
backend does it: a put file is fetched by a plain GET of its link until the link expires, a
link is the same each time it is asked for, a link tampered with opens nothing, a deleted file
is gone. A backend that passes can stand behind Darkroom."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from darkroom.storage import result_key
from tests.support.storages import STORAGES, StorageUnderTest, storage_under_test

WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8 a stand-in image"
RETENTION_HOURS = 48


@pytest.fixture(params=STORAGES)
async def subject(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StorageUnderTest]:
    with storage_under_test(request.param, request, tmp_path, monkeypatch) as subject:
        await subject.storage.prepare()
        yield subject


def new_key() -> str:
    return result_key(secrets.token_hex(12), RETENTION_HOURS)


async def stored(subject: StorageUnderTest, data: bytes = WEBP) -> str:
    key = new_key()
    await subject.storage.put(key, data, "image/webp")
    return key


def in_an_hour() -> float:
    return time.time() + 3600


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def signature_param(url: str) -> str:
    return "X-Amz-Signature" if "X-Amz-Signature" in url else "sig"


def expiry_param(url: str) -> str:
    return "X-Amz-Expires" if "X-Amz-Expires" in url else "expires"


async def test_a_put_file_is_fetched_by_a_plain_get_of_its_link(subject: StorageUnderTest) -> None:
    key = await stored(subject)
    download = subject.get(subject.storage.url(key, in_an_hour()))
    assert download.status_code == 200
    assert download.content == WEBP
    assert download.headers["content-type"] == "image/webp"


async def test_a_link_is_a_function_of_its_key_and_expiry(subject: StorageUnderTest) -> None:
    key, expires_at = await stored(subject), in_an_hour()
    assert subject.storage.url(key, expires_at) == subject.storage.url(key, expires_at)
    assert subject.storage.url(key, expires_at) != subject.storage.url(new_key(), expires_at)


async def test_a_second_put_replaces_the_file(subject: StorageUnderTest) -> None:
    key = await stored(subject)
    await subject.storage.put(key, b"RIFF-second-WEBP", "image/webp")
    assert subject.get(subject.storage.url(key, in_an_hour())).content == b"RIFF-second-WEBP"


async def test_a_deleted_file_is_gone_and_a_missing_key_deletes_without_error(
    subject: StorageUnderTest,
) -> None:
    key = await stored(subject)
    url = subject.storage.url(key, in_an_hour())
    await subject.storage.delete([key, new_key()])
    assert subject.get(url).status_code == 404


async def test_an_expired_link_is_refused(subject: StorageUnderTest) -> None:
    key = await stored(subject)
    assert subject.get(subject.storage.url(key, time.time() - 10)).status_code == 403


async def test_a_link_with_another_signature_or_a_longer_expiry_is_refused(
    subject: StorageUnderTest,
) -> None:
    url = subject.storage.url(await stored(subject), in_an_hour())
    sig, expiry = signature_param(url), expiry_param(url)
    signature = query_of(url)[sig]
    other = ("0" if signature[0] != "0" else "1") + signature[1:]
    assert subject.get(with_query(url, **{sig: other})).status_code == 403
    longer = str(int(query_of(url)[expiry]) + 1)
    assert subject.get(with_query(url, **{expiry: longer})).status_code == 403
    assert subject.get(url.split("?")[0]).status_code == 403  # no signature at all


async def test_a_links_signature_does_not_open_another_file(subject: StorageUnderTest) -> None:
    url = subject.storage.url(await stored(subject), in_an_hour())
    other = subject.storage.url(await stored(subject), in_an_hour())
    forged = url.replace(url.split("?")[0], other.split("?")[0])
    assert subject.get(forged).status_code == 403


async def test_prepare_is_safe_to_run_again(subject: StorageUnderTest) -> None:
    await subject.storage.prepare()  # a second node starting
    key = await stored(subject)
    assert subject.get(subject.storage.url(key, in_an_hour())).status_code == 200


async def test_a_put_file_is_read_back_by_its_key(subject: StorageUnderTest) -> None:
    key = await stored(subject)
    assert await subject.storage.get(key) == WEBP
    assert await subject.storage.get(new_key()) is None
    await subject.storage.delete([key])
    assert await subject.storage.get(key) is None


async def test_its_own_links_are_told_from_other_urls(subject: StorageUnderTest) -> None:
    key = await stored(subject)
    link = subject.storage.url(key, in_an_hour())
    assert subject.storage.key_of(link) == key
    assert subject.storage.key_of("https://example.com/exp48h/x_result.webp?sig=1") is None
    assert subject.storage.key_of(link.split("?")[0]) is None  # a link has its signature


async def test_a_forged_local_link_names_no_key(subject: StorageUnderTest) -> None:
    if signature_param(subject.storage.url(new_key(), in_an_hour())) != "sig":
        pytest.skip("S3 checks its own signatures when it serves a link")
    link = subject.storage.url(await stored(subject), in_an_hour())
    assert subject.storage.key_of(with_query(link, sig="0" * 64)) is None
    expired = subject.storage.url(await stored(subject), time.time() - 1)
    assert subject.storage.key_of(expired) is None
