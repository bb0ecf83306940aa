"""The media API over HTTP against the real server: shapes, statuses and downloads."""

from __future__ import annotations

import io
import time

import httpx
import pytest
from PIL import Image

from tests.support.servers import wait_for_status
from tests.support.spec import SPEC_TABLE

CREATE_KEYS = ["code", "id", "model", "prompt", "created_at", "status", "url"]


def create(client: httpx.Client, **body) -> dict:
    body.setdefault("model", "google-imagen-3")
    body.setdefault("prompt", "a lighthouse at dusk")
    response = client.post("/v1/media/create", json=body)
    assert response.status_code == 200
    return response.json()


def test_create_answers_the_seed_shape_at_once(client):
    before = int(time.time())
    task = create(client, ar="9:21", prompt="Cinematic photo")
    assert list(task) == CREATE_KEYS
    assert task["code"] == 0
    assert task["status"] == "idle"
    assert task["url"] is None
    assert task["model"] == "google-imagen-3"
    assert task["prompt"] == "Cinematic photo --ar 9:21"
    assert isinstance(task["created_at"], int)
    assert before <= task["created_at"] <= int(time.time())
    assert len(task["id"]) == 24 and task["id"] == task["id"].lower()
    assert int(task["id"][:8], 16) == task["created_at"]


def test_prompt_without_ar_is_echoed_as_given(client):
    task = create(client, prompt="  spaces kept  ")
    assert task["prompt"] == "  spaces kept  "


def test_unknown_fields_are_ignored(client):
    task = create(client, style="vivid", callback_url="http://example.invalid/hook", n=3)
    assert task["code"] == 0


def test_result_by_post_body_get_query_post_query_and_get_body(client):
    task = create(client)
    task_id = task["id"]
    answers = [
        client.post("/v1/media/result", json={"task_id": task_id}),
        client.get("/v1/media/result", params={"task_id": task_id}),
        client.post("/v1/media/result", params={"task_id": task_id}),
        client.request("GET", "/v1/media/result", json={"task_id": task_id}),
    ]
    for answer in answers:
        assert answer.status_code == 200
        body = answer.json()
        assert body["code"] == 0 and body["id"] == task_id
        assert body["status"] in ("idle", "processing", "done")


def test_task_reaches_done_with_a_link_that_a_plain_get_downloads(client, darkroom):
    task = wait_for_status(client, create(client, ar="16:9")["id"])
    assert task["status"] == "done"
    assert list(task)[:7] == CREATE_KEYS
    url = task["url"]
    assert url.startswith(f"{darkroom.base_url}/files/exp48h/{task['id']}_result.webp?")
    download = httpx.get(url)  # no headers at all
    assert download.status_code == 200
    assert download.headers["content-type"] == "image/webp"
    image = Image.open(io.BytesIO(download.content))
    assert image.format == "WEBP" and image.size == (1408, 768)


def test_every_poll_of_a_done_task_returns_the_same_link(client):
    task = wait_for_status(client, create(client)["id"])
    again = client.get("/v1/media/result", params={"task_id": task["id"]}).json()
    assert again["url"] == task["url"]


@pytest.mark.parametrize("ratio", list(SPEC_TABLE))
def test_each_ratio_gives_the_spec_size(client, ratio):
    task = wait_for_status(client, create(client, ar=ratio)["id"])
    image = Image.open(io.BytesIO(httpx.get(task["url"]).content))
    assert image.size == SPEC_TABLE[ratio]


def test_default_ratio_is_square(client):
    task = wait_for_status(client, create(client)["id"])
    assert Image.open(io.BytesIO(httpx.get(task["url"]).content)).size == (1024, 1024)


def test_aspect_ratio_is_read_as_ar_when_ar_is_absent(client):
    task = create(client, aspect_ratio="9:16")
    assert task["prompt"] == "a lighthouse at dusk --ar 9:16"
    done = wait_for_status(client, task["id"])
    assert Image.open(io.BytesIO(httpx.get(done["url"]).content)).size == SPEC_TABLE["9:16"]


def test_ar_wins_over_aspect_ratio(client):
    assert create(client, ar="16:9", aspect_ratio="9:16")["prompt"].endswith(" --ar 16:9")


def test_a_512_model_serves_square_as_512(client):
    task = wait_for_status(client, create(client, model="tiny-512", ar="1:1")["id"])
    assert Image.open(io.BytesIO(httpx.get(task["url"]).content)).size == (512, 512)


def test_a_tampered_link_is_refused(client):
    task = wait_for_status(client, create(client)["id"])
    url = task["url"]
    tampered_sig = url[:-4] + ("0000" if not url.endswith("0000") else "1111")
    assert httpx.get(tampered_sig).status_code == 403
    other_expiry = url.replace("expires=", "expires=9")
    assert httpx.get(other_expiry).status_code == 403
    assert httpx.get(url.split("?")[0]).status_code == 403
    # Malformed parameters are refused the same way, never answered as a server error.
    path = url.split("?")[0]
    signature = url.split("sig=")[1]
    for query in (
        {"expires": "\u00b2", "sig": signature},  # a digit to str.isdigit(), not to int()
        {"expires": "9" * 5000, "sig": signature},
        {"expires": url.split("expires=")[1].split("&")[0], "sig": "\u00e9" * 64},
    ):
        assert httpx.get(path, params=query).status_code == 403


def test_bearer_scheme_works_too(darkroom, api_key):
    response = httpx.post(
        f"{darkroom.base_url}/v1/media/create",
        headers={"Authorization": f"Bearer {api_key}"},
        json={"model": "google-imagen-3", "prompt": "x"},
    )
    assert response.json()["code"] == 0


def test_a_key_sees_only_its_own_tasks(client, darkroom):
    task = create(client)
    other = darkroom.create_key("--name", "other")
    answer = httpx.post(
        f"{darkroom.base_url}/v1/media/result",
        headers={"Authorization": other},
        json={"task_id": task["id"]},
    ).json()
    assert answer["code"] == 4


def test_docs_health_and_openapi(darkroom):
    assert httpx.get(f"{darkroom.base_url}/healthz").json() == {"status": "ok"}
    docs = httpx.get(f"{darkroom.base_url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schema = httpx.get(f"{darkroom.base_url}/openapi.json").json()
    assert "/v1/media/create" in schema["paths"] and "/v1/media/result" in schema["paths"]
    create_body = schema["paths"]["/v1/media/create"]["post"]["requestBody"]
    assert "prompt" in create_body["content"]["application/json"]["schema"]["properties"]


def test_metrics_count_created_and_finished_tasks(client, darkroom):
    wait_for_status(client, create(client)["id"])
    text = httpx.get(f"{darkroom.base_url}/metrics").text
    assert 'darkroom_tasks_created_total{model="google-imagen-3"}' in text
    assert 'darkroom_tasks_finished_total{model="google-imagen-3"}' in text
    assert "darkroom_queue_depth" in text
    assert "darkroom_generation_seconds_bucket" in text
