"""OpenAI's Images API through the official `openai` Python SDK, unchanged but for its base URL
and key, against the real server on a socket: generations in both response formats, edits with
uploaded files, the model list, and each failure raising the SDK's own exception class. Every
image is a task of the media API (charged, listed by /v1/media/tasks)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai import OpenAI
from PIL import Image

from tests.support.fakes.serving import serving
from tests.support.media import client_for
from tests.support.servers import Darkroom, broken_model_catalog, running, wait_for_status

PROMPT = "a lighthouse at dusk"
MODEL = "google-imagen-3"  # the test catalog's: tiny engine, 1024-pixel sizes, price 1


def sdk(darkroom: Darkroom, key: str) -> OpenAI:
    # No retries: each test asserts what one request does.
    return OpenAI(base_url=f"{darkroom.base_url}/v1", api_key=key, max_retries=0, timeout=120)


def decoded(b64: str | None) -> Image.Image:
    assert b64 is not None
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def balance(darkroom: Darkroom, key: str) -> float:
    with client_for(darkroom, key) as client:
        return client.get("/v1/balance").json()["balance"]


def media_tasks(darkroom: Darkroom, key: str) -> list[dict]:
    with client_for(darkroom, key) as client:
        page = client.get("/v1/media/tasks", params={"limit": 100}).json()
    assert page["code"] == 0, page
    return page["data"]


def test_generate_three_images_as_base64_png_of_the_requested_size(darkroom, api_key):
    answer = sdk(darkroom, api_key).images.generate(
        model=MODEL, prompt=PROMPT, n=3, size="1024x1024", response_format="b64_json"
    )
    assert len(answer.data) == 3
    images = [decoded(item.b64_json) for item in answer.data]
    assert [(image.format, image.size) for image in images] == [("PNG", (1024, 1024))] * 3
    assert all(item.url is None for item in answer.data)
    assert len({image.tobytes() for image in images}) == 3  # three tasks, three seeds


def test_generate_three_images_as_links_each_a_charged_task(darkroom):
    key = darkroom.create_key("--name", "openai-links", "--balance", "10")
    answer = sdk(darkroom, key).images.generate(
        model=MODEL, prompt=PROMPT, n=3, size="1024x1536", response_format="url"
    )
    assert len(answer.data) == 3 and all(item.b64_json is None for item in answer.data)
    for item in answer.data:
        assert item.url is not None
        image = Image.open(io.BytesIO(httpx.get(item.url).content))
        # 1024x1536 is 2:3, nearest the model's 3:4, made at the model's size for it.
        assert (image.format, image.size) == ("WEBP", (896, 1280))
    tasks = media_tasks(darkroom, key)
    assert [(t["status"], t["cost"], t["prompt"]) for t in tasks] == [
        ("done", 1, f"{PROMPT} --ar 3:4")
    ] * 3
    assert sorted(t["url"] for t in tasks) == sorted(item.url for item in answer.data)
    assert balance(darkroom, key) == 7


def test_without_a_response_format_both_the_link_and_the_file_are_given(darkroom, api_key):
    answer = sdk(darkroom, api_key).images.generate(model=MODEL, prompt=PROMPT)
    (item,) = answer.data
    assert item.url is not None and decoded(item.b64_json).size == (1024, 1024)


def test_output_format_jpeg_gives_a_jpeg(darkroom, api_key):
    answer = sdk(darkroom, api_key).images.generate(
        model="tiny-512", prompt=PROMPT, size="1792x1024", output_format="jpeg",
        response_format="b64_json",
    )  # fmt: skip
    image = decoded(answer.data[0].b64_json)
    assert (image.format, image.size) == ("JPEG", (704, 384))  # 16:9 at 512 pixels
    assert answer.output_format == "jpeg"


def test_models_list_and_retrieve_show_the_keys_models(darkroom, api_key):
    client = sdk(darkroom, api_key)
    assert [m.id for m in client.models.list()] == [MODEL, "tiny-512"]
    assert client.models.retrieve("tiny-512").id == "tiny-512"
    restricted = sdk(darkroom, darkroom.create_key("--models", "tiny-512"))
    assert [(m.id, m.object) for m in restricted.models.list()] == [("tiny-512", "model")]
    with pytest.raises(openai.NotFoundError):
        restricted.models.retrieve(MODEL)


# -- errors: the SDK's own exception classes ------------------------------------------------


def test_a_wrong_key_raises_authentication_error(darkroom):
    with pytest.raises(openai.AuthenticationError) as raised:
        sdk(darkroom, "sk-not-a-key").images.generate(model=MODEL, prompt=PROMPT)
    assert raised.value.status_code == 401 and raised.value.code == "invalid_api_key"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 11}, "n"),
        ({"prompt": "   "}, "prompt"),
        ({"size": "big"}, "size"),
        ({"background": "transparent"}, "background"),
        ({"output_format": "gif"}, "output_format"),
    ],
)
def test_bad_input_raises_bad_request_error_naming_the_param(darkroom, api_key, fields, param):
    before = len(media_tasks(darkroom, api_key))
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(darkroom, api_key).images.generate(**{"model": MODEL, "prompt": PROMPT, **fields})
    error = raised.value
    assert (error.status_code, error.param, error.type) == (400, param, "invalid_request_error")
    assert len(media_tasks(darkroom, api_key)) == before  # nothing was queued


def test_a_prompt_the_content_policy_refuses_raises_bad_request_error(darkroom, api_key):
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(darkroom, api_key).images.generate(model=MODEL, prompt="a forbiddenword lighthouse")
    assert raised.value.code == "content_policy_violation"


def test_an_unknown_or_forbidden_model_raises_not_found_error(darkroom, api_key):
    with pytest.raises(openai.NotFoundError) as raised:
        sdk(darkroom, api_key).images.generate(model="dall-e-3", prompt=PROMPT)
    assert raised.value.code == "model_not_found" and raised.value.param == "model"
    restricted = sdk(darkroom, darkroom.create_key("--models", "tiny-512"))
    with pytest.raises(openai.NotFoundError):
        restricted.images.generate(model=MODEL, prompt=PROMPT)


def test_variations_are_not_served_and_raise_not_found_error(darkroom, api_key):
    with pytest.raises(openai.NotFoundError):
        sdk(darkroom, api_key).images.create_variation(image=_png((64, 64)))


def test_an_edit_on_a_model_without_image_inputs_raises_bad_request_error(darkroom, api_key):
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(darkroom, api_key).images.edit(model=MODEL, prompt=PROMPT, image=_png((64, 64)))
    assert raised.value.param == "image"


def test_insufficient_balance_is_402_and_nothing_is_charged(darkroom):
    key = darkroom.create_key("--name", "openai-poor", "--balance", "2")
    with pytest.raises(openai.APIStatusError) as raised:
        sdk(darkroom, key).images.generate(model=MODEL, prompt=PROMPT, n=3)
    assert raised.value.status_code == 402 and raised.value.code == "insufficient_quota"
    assert type(raised.value) is openai.APIStatusError  # no subclass: the SDK has none for 402
    # The two tasks the balance paid for were withdrawn and refunded: all or nothing.
    assert balance(darkroom, key) == 2
    assert [(t["status"], t["cost"]) for t in media_tasks(darkroom, key)] == [("failed", 0)] * 2


def test_the_media_api_keeps_its_own_envelope(darkroom):
    with httpx.Client(base_url=darkroom.base_url, headers={"Authorization": "nope"}) as client:
        answer = client.post("/v1/media/create", json={"model": MODEL, "prompt": PROMPT})
        unknown = client.get("/v1/media/nothing-here")
    assert answer.status_code == 200 and answer.json()["code"] == 2
    assert unknown.status_code == 200 and unknown.json()["code"] == 99


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/images/generations"), ("POST", "/v1/images/other"), ("POST", "/v1/models")],
)
def test_other_openai_paths_and_methods_are_404_in_openais_shape(darkroom, api_key, method, path):
    with client_for(darkroom, api_key) as client:
        answer = client.request(method, path)
    assert answer.status_code == 404
    assert list(answer.json()["error"]) == ["message", "type", "param", "code"]


def test_images_that_all_fail_raise_internal_server_error(tmp_path):
    catalog = broken_model_catalog(tmp_path)
    with running(tmp_path, catalog, max_attempts=1) as darkroom:
        key = darkroom.create_key("--balance", "5")
        with pytest.raises(openai.InternalServerError) as raised:
            sdk(darkroom, key).images.generate(model=MODEL, prompt=PROMPT, n=2)
        assert raised.value.status_code == 500 and raised.value.type == "server_error"
        assert [t["status"] for t in media_tasks(darkroom, key)] == ["failed"] * 2
        assert balance(darkroom, key) == 5  # failed tasks are refunded


# -- a queue without workers: a full queue, and the generate timeout ------------------------


@pytest.fixture
def idle_server(tmp_path) -> Iterator[Darkroom]:
    """A server whose tasks wait: no worker, a queue of 2, a generate timeout of 1 s."""
    catalog = f'[models."{MODEL}"]\nengine = "tiny"\nprice = 1\n'
    env = {"DARKROOM_MAX_QUEUE": "2", "DARKROOM_GENERATE_TIMEOUT_SECONDS": "1"}
    with serving(tmp_path, catalog, env, "--workers", "0") as darkroom:
        yield darkroom


def test_a_full_queue_raises_rate_limit_error_and_withdraws_the_request(idle_server):
    key = idle_server.create_key("--balance", "10")
    with pytest.raises(openai.RateLimitError) as raised:
        sdk(idle_server, key).images.generate(model=MODEL, prompt=PROMPT, n=3)
    assert raised.value.status_code == 429 and raised.value.code == "rate_limit_exceeded"
    assert [t["status"] for t in media_tasks(idle_server, key)] == ["failed"] * 2
    assert balance(idle_server, key) == 10


def test_waiting_past_the_generate_timeout_is_504_and_the_tasks_go_on(idle_server):
    key = idle_server.create_key()
    with pytest.raises(openai.InternalServerError) as raised:
        sdk(idle_server, key).images.generate(model=MODEL, prompt=PROMPT, n=2)
    error = raised.value
    assert error.status_code == 504 and error.code == "timeout"
    assert error.response.headers["x-should-retry"] == "false"  # a retry would charge again
    waiting = media_tasks(idle_server, key)
    assert [t["status"] for t in waiting] == ["idle", "idle"]
    assert all(t["id"] in error.message for t in waiting)
    idle_server.start_worker()
    with client_for(idle_server, key) as client:
        for task in waiting:
            assert wait_for_status(client, task["id"])["status"] == "done"


# -- edits: uploaded files become the model's reference images ------------------------------

EDIT_CATALOG = """
[models."tiny-edit"]
engine = "tiny"
native_size = 512
max_images = 2
max_batch = 4
batch_wait_ms = 500
"""


@pytest.fixture(scope="module")
def edit_server(tmp_path_factory) -> Iterator[Darkroom]:
    with serving(tmp_path_factory.mktemp("openai-edits"), EDIT_CATALOG) as darkroom:
        yield darkroom


def _png(size: tuple[int, int], color: str = "red") -> io.BytesIO:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    buffer.seek(0)
    buffer.name = "input.png"
    return buffer


def _batch_sizes(logs: str) -> list[int]:
    return [json.loads(line)["size"] for line in logs.splitlines() if '"event": "batch"' in line]


def test_edit_with_a_file_makes_n_images_in_one_batch_shaped_like_the_input(edit_server):
    key = edit_server.create_key()
    answer = sdk(edit_server, key).images.edit(
        model="tiny-edit", prompt=PROMPT, image=_png((300, 200)), n=2, response_format="b64_json"
    )
    # No size: the input's 3:2 picks the model's nearest ratio, 4:3, at 512 pixels.
    assert [decoded(item.b64_json).size for item in answer.data] == [(640, 448)] * 2
    assert _batch_sizes(edit_server.logs()) == [2]
    assert all(t["status"] == "done" for t in media_tasks(edit_server, key))


def test_edit_with_several_files_and_a_mask(edit_server):
    key = edit_server.create_key()
    answer = sdk(edit_server, key).images.edit(
        prompt=PROMPT,  # no model: the key's first model that takes images
        image=[_png((64, 64)), _png((64, 64), "blue")],
        mask=_png((64, 64), "black"),
        size="1024x1024",
        response_format="url",
    )
    (item,) = answer.data
    image = Image.open(io.BytesIO(httpx.get(item.url).content))
    assert image.size == (512, 512)


def test_an_edit_whose_file_is_not_an_image_raises_bad_request_error(edit_server):
    key = edit_server.create_key()
    not_image = io.BytesIO(b"plain text, not a picture")
    not_image.name = "notes.png"
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(edit_server, key).images.edit(model="tiny-edit", prompt=PROMPT, image=not_image)
    assert raised.value.param == "image[0]"


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/v1/images/generations", {"content-type": "application/json"}, b"{not json"),
        ("/v1/images/generations", {"content-type": "application/json"}, b"[1, 2]"),
        ("/v1/images/generations", {"content-type": "text/plain"}, b"a lighthouse"),
        ("/v1/images/generations", {"content-type": "application/json"}, b" " * 1_100_000),
        ("/v1/images/edits", {"content-type": "application/json"}, b'{"prompt": "x"}'),
        ("/v1/images/edits", {"content-type": "multipart/form-data"}, b"no boundary"),
        ("/v1/images/edits", {"content-type": "multipart/form-data; boundary=x"}, b"--x\r\nbad"),
        ("/v1/images/edits", {"content-type": "multipart/form-data; boundary=x"}, b"x" * 1_100_000),
    ],
)
def test_malformed_bodies_are_400_in_openais_shape(darkroom, api_key, path, headers, body):
    with client_for(darkroom, api_key) as client:
        answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["type"] == "invalid_request_error"


# -- video and audio models belong to the media API ------------------------------------------

KINDS_CATALOG = f"""
[models."{MODEL}"]
engine = "tiny"

[models."veo-3"]
engine = "relay"
kind = "video"
base_url = "http://127.0.0.1:9"
max_images = 1

[models."suno"]
engine = "relay"
kind = "audio"
base_url = "http://127.0.0.1:9"
"""


@pytest.fixture(scope="module")
def kinds_server(tmp_path_factory) -> Iterator[Darkroom]:
    """An image, a video and an audio model; no worker (nothing here may be queued)."""
    folder = tmp_path_factory.mktemp("openai-kinds")
    with serving(folder, KINDS_CATALOG, {}, "--workers", "0") as darkroom:
        yield darkroom


@pytest.mark.parametrize(("model", "kind"), [("veo-3", "video"), ("suno", "audio")])
def test_generations_and_edits_refuse_a_video_or_audio_model_and_queue_nothing(
    kinds_server, model, kind
):
    key = kinds_server.create_key("--balance", "10")
    client = sdk(kinds_server, key)
    with pytest.raises(openai.BadRequestError) as generated:
        client.images.generate(model=model, prompt=PROMPT)
    with pytest.raises(openai.BadRequestError) as edited:
        client.images.edit(model=model, prompt=PROMPT, image=_png((64, 64)))
    for raised in (generated, edited):
        error = raised.value
        assert (error.status_code, error.param, error.type) == (
            400,
            "model",
            "invalid_request_error",
        )
        assert f"makes {kind}" in error.message and "/v1/media/create" in error.message
    assert media_tasks(kinds_server, key) == []
    assert balance(kinds_server, key) == 10


def test_the_model_list_names_only_image_models(kinds_server):
    client = sdk(kinds_server, kinds_server.create_key())
    assert [m.id for m in client.models.list()] == [MODEL]
    with pytest.raises(openai.NotFoundError) as raised:
        client.models.retrieve("veo-3")
    assert "makes video" in raised.value.message and raised.value.param == "model"
    with client_for(kinds_server, kinds_server.create_key()) as media:
        listed = media.get("/v1/media/models").json()["data"]
    assert sorted(m["id"] for m in listed) == sorted([MODEL, "veo-3", "suno"])
