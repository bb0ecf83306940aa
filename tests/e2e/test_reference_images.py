"""Reference images over the real server: a tiny model that takes them, a link to one of the
server's own results read back from storage (the server's own address is loopback, which a
fetch would refuse), a `data:` URL, and images that cannot be had. The tiny engine's output
measurably follows its reference: same prompt and seed, with and without an image, and with two
different images, differ by tens of levels of 255 on average."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.fakes.serving import client_for, download, serving
from tests.support.servers import wait_for_status

CATALOG = """
[models."tiny-edit"]
engine = "tiny"
native_size = 512
max_images = 2
images_override_ar = true
"""
PROMPT = "a lighthouse at night"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    # Private addresses are refused, as in production (whatever the test runner's environment).
    folder = tmp_path_factory.mktemp("reference-images")
    with (
        serving(folder, CATALOG, {"DARKROOM_ALLOW_PRIVATE_URLS": "0"}) as darkroom,
        client_for(darkroom) as http,
    ):
        yield http


def create(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"model": "tiny-edit", "prompt": PROMPT, "seed": 5, **fields}
    answer = client.post("/v1/media/create", json=body)
    assert answer.status_code == 200
    return answer.json()


def finished(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    task = create(client, **fields)
    assert task["code"] == 0, task
    return wait_for_status(client, task["id"])


def made(client: httpx.Client, **fields: Any) -> Image.Image:
    task = finished(client, **fields)
    assert task["status"] == "done", task
    return download(task["url"]).convert("RGB")


def difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_a_stored_result_as_reference_changes_the_image(client):
    first = finished(client, prompt="a harbour", seed=11)["url"]
    second = finished(client, prompt="a forest", seed=12)["url"]
    plain = made(client)
    on_first, on_second = made(client, images=[first]), made(client, images=[second])
    assert plain.size == on_first.size == (512, 512)
    assert difference(plain, on_first) > 20  # measured: 39.5
    assert difference(on_first, on_second) > 10  # measured: 24.0


def test_an_edit_keeps_the_shape_of_its_image(client):
    wide = finished(client, ar="16:9", seed=13)["url"]
    assert made(client, ar="1:1", images=[wide]).size == (704, 384)  # 16:9 at 512


def test_a_data_url_reference_changes_the_image(client):
    red = data_url(Image.new("RGB", (64, 64), (220, 30, 30)))
    task = create(client, images=[red])
    assert task["code"] == 0, task
    done = wait_for_status(client, task["id"])
    edited = download(done["url"]).convert("RGB")
    assert difference(made(client), edited) > 20
    r, _, b = np.asarray(edited, np.float64).mean(axis=(0, 1))
    assert r > b + 40  # the edit of a red picture is red


def test_more_images_than_the_model_takes_is_code_3_naming_its_count(client):
    answer = create(client, images=["https://example.com/a.png"] * 3)
    assert answer["code"] == 3
    [issue] = answer["issues"]
    assert (issue["code"], issue["path"], issue["maximum"]) == ("too_big", ["images"], 2)
    assert "at most 2" in issue["message"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/ref.png", "images[0] at 127.0.0.1 is not allowed"),
        ("http://10.1.2.3/ref.png", "images[0] at 10.1.2.3 is not allowed"),
        ("https://no-such-host.invalid/ref.png", "images[0] at no-such-host.invalid could not"),
    ],
    ids=["loopback", "private", "unresolvable"],
)
def test_an_image_that_cannot_be_had_fails_the_task_naming_it(client, url, message):
    task = finished(client, images=[url])
    assert task["status"] == "failed" and task["url"] is None
    assert task["message"].startswith(message), task["message"]
    assert made(client).size == (512, 512)  # the worker goes on


@pytest.mark.parametrize(
    "url",
    [
        "data:image/png;base64," + base64.b64encode(b"not a png").decode(),
        data_url(Image.new("1", (20_000, 20_000))),  # a decompression bomb: 1.2 GB decoded
    ],
    ids=["not an image", "decompression bomb"],
)
def test_a_data_url_that_cannot_be_read_fails_the_task_naming_it(client, url):
    task = create(client, images=[url])
    assert task["code"] == 0, task
    failed = wait_for_status(client, task["id"])
    assert failed["status"] == "failed"
    assert failed["message"].startswith("images[0] at a data: URL is "), failed["message"]
