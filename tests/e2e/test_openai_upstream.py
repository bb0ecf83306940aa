"""Darkroom's own `openai` engine, an OpenAI SDK client written for api.openai.com, pointed at
another Darkroom's OpenAI API: generations, edits with reference images, and a refused prompt
all go through, and the front server's tasks end as they would against OpenAI. The engine sends
no `response_format` and reads `b64_json`, as gpt-image-1 programs do; the back server names
its model `gpt-image-1`, as an operator does for programs that hard-code that id."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from tests.support.fakes.serving import client_for, download, serving
from tests.support.servers import Darkroom, wait_for_status

BACK_CATALOG = """
[models."gpt-image-1"]
engine = "tiny"
max_images = 2
max_batch = 4

[safety]
blocked_terms = ["forbiddenword"]
"""
KEY_ENV = "DARKROOM_TEST_BACK_KEY"


@pytest.fixture(scope="module")
def back(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    with serving(tmp_path_factory.mktemp("openai-back"), BACK_CATALOG) as darkroom:
        yield darkroom


@pytest.fixture(scope="module")
def front(back: Darkroom, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    catalog = f"""
[models."front"]
engine = "openai"
base_url = "{back.base_url}/v1"
api_key_env = "{KEY_ENV}"
attempts = 1
"""
    env = {KEY_ENV: back.create_key("--name", "front")}
    with (
        serving(tmp_path_factory.mktemp("openai-front"), catalog, env) as darkroom,
        client_for(darkroom) as client,
    ):
        yield client


def finished(client: httpx.Client, **fields: object) -> dict:
    body = {"model": "front", "prompt": "a lighthouse at dusk", **fields}
    task = client.post("/v1/media/create", json=body).json()
    assert task["code"] == 0, task
    return wait_for_status(client, task["id"])


def test_a_generation_through_the_back_servers_openai_api(front):
    task = finished(front, ar="16:9")
    assert task["status"] == "done", task
    assert download(task["url"]).size == (1408, 768)


def test_an_edit_sends_the_reference_image_as_a_file(front, back):
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), "red").save(buffer, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    task = finished(front, images=[data_url])
    assert task["status"] == "done", task
    assert '"POST /v1/images/edits HTTP/1.1" 200' in back.logs()


def test_a_prompt_the_back_server_refuses_fails_the_task_as_openai_would(front):
    task = finished(front, prompt="a forbiddenword lighthouse")
    assert task["status"] == "failed"
    # The engine read the 400's `content_policy_violation` as OpenAI's refusal of a prompt.
    assert "blocked by OpenAI's content safety check" in task["message"], task
