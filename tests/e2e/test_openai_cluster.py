"""OpenAI's Images API on many machines: PostgreSQL, S3, an API node without workers and a worker
node, every poll and the generate timeout ten minutes long. The SDK's request is answered within
its own two-minute timeout only if NOTIFY woke the worker for the queued tasks and then the
waiting request for each finished one; the links are S3's, and the files are read back from it."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from tests.e2e.test_generate import SLOW_POLLS, backend_of, wait_for_log
from tests.support.backends import POSTGRES_S3
from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Darkroom]:
    darkroom = backend_of(request, POSTGRES_S3).installation(
        tmp_path, CONFIGS / "test.toml", generate_timeout_seconds=600, **SLOW_POLLS
    )
    try:
        darkroom.start_server("--workers", "0")
        darkroom.start_worker()
        yield darkroom
    finally:
        darkroom.stop()


def test_images_made_by_a_worker_node_answer_through_notify_with_s3_links(cluster):
    client = OpenAI(base_url=f"{cluster.base_url}/v1", api_key=cluster.create_key(), max_retries=0)
    wait_for_log(cluster, "listening for new tasks")  # the worker node's listener
    answer = client.images.generate(model="tiny-512", prompt="a lighthouse", n=2, timeout=120)
    assert len(answer.data) == 2
    for item in answer.data:  # no response_format: both the link and the file
        assert item.url is not None and item.b64_json is not None
        linked = Image.open(io.BytesIO(httpx.get(item.url).content))
        given = Image.open(io.BytesIO(base64.b64decode(item.b64_json)))
        assert (linked.format, linked.size) == ("WEBP", (512, 512))
        assert (given.format, given.size) == ("PNG", (512, 512))
