"""Every error code of the spec, provoked over HTTP against the real server. API-level errors
are HTTP 200 with a non-zero code and a message in plain words; nothing a client sends is a 500."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from tests.support.catalogs import CONFIGS
from tests.support.servers import running

GOOD = {"model": "google-imagen-3", "prompt": "a lighthouse at dusk"}


def post(client: httpx.Client, path: str, **kwargs) -> dict:
    response = client.post(path, **kwargs)
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body["message"], str) and len(body["message"]) > 10
    return body


def create_error(client: httpx.Client, body) -> dict:
    answer = post(client, "/v1/media/create", json=body)
    assert answer["code"] != 0
    return answer


# -- code 2: keys -------------------------------------------------------------------------


def test_missing_key_is_code_2(darkroom):
    answer = httpx.post(f"{darkroom.base_url}/v1/media/create", json=GOOD).json()
    assert answer["code"] == 2 and "Authorization" in answer["message"]


def test_unknown_key_is_code_2(darkroom):
    headers = {"Authorization": "dk_not-a-real-key"}
    answer = httpx.post(f"{darkroom.base_url}/v1/media/create", json=GOOD, headers=headers)
    assert answer.status_code == 200 and answer.json()["code"] == 2


def test_revoked_key_is_code_2(darkroom):
    key = darkroom.create_key("--name", "to-revoke")
    headers = {"Authorization": key}
    url = f"{darkroom.base_url}/v1/media/create"
    assert httpx.post(url, json=GOOD, headers=headers).json()["code"] == 0
    darkroom.cli("keys", "revoke", key)
    assert httpx.post(url, json=GOOD, headers=headers).json()["code"] == 2


# -- code 3: invalid input ------------------------------------------------------------------


def test_malformed_json_is_code_3(client):
    answer = post(
        client,
        "/v1/media/create",
        content=b'{"model": "google-imagen-3", "prompt": ',
        headers={"Content-Type": "application/json"},
    )
    assert answer["code"] == 3 and "JSON" in answer["message"]


def test_wrong_content_type_is_code_3(client):
    answer = post(client, "/v1/media/create", data={"model": "google-imagen-3", "prompt": "x"})
    assert answer["code"] == 3 and "application/json" in answer["message"]


def test_body_over_the_limit_is_code_3(client):
    answer = post(client, "/v1/media/create", json={**GOOD, "padding": "x" * 1_100_000})
    assert answer["code"] == 3 and "limit" in answer["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("model", 42),
        ("prompt", ["a", "list"]),
        ("prompt", None),
        ("ar", 169),
        ("images", "http://example.com/a.png"),
        ("seed", "7"),
        ("seed", -1),
        ("negative_prompt", {"no": "dict"}),
    ],
)
def test_a_wrong_type_is_code_3_with_an_issue_for_the_field(client, field, value):
    answer = create_error(client, {**GOOD, field: value})
    assert answer["code"] == 3
    assert [i["path"][0] for i in answer["issues"]] == [field]
    issue = answer["issues"][0]
    assert set(issue) == {"path", "expected", "message"}
    assert issue["expected"] and issue["message"]


def test_missing_fields_are_each_listed(client):
    answer = create_error(client, {})
    assert answer["code"] == 3
    assert sorted(i["path"][0] for i in answer["issues"]) == ["model", "prompt"]
    assert all("required" in i["message"] for i in answer["issues"])


@pytest.mark.parametrize("prompt", ["", "   \n\t ", "x" * 4001, " " + "x" * 4001])
def test_prompt_out_of_bounds_after_trimming_is_code_3(client, prompt):
    answer = create_error(client, {**GOOD, "prompt": prompt})
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["prompt"]


def test_prompt_of_4000_characters_padded_with_spaces_is_accepted(client):
    answer = post_ok(client, {**GOOD, "prompt": "  " + "x" * 4000 + "  "})
    assert answer["status"] == "idle"


def post_ok(client: httpx.Client, body: dict) -> dict:
    answer = client.post("/v1/media/create", json=body).json()
    assert answer["code"] == 0, answer
    return answer


def test_unknown_ratio_is_code_3_listing_the_ratios(client):
    answer = create_error(client, {**GOOD, "ar": "2:1"})
    assert answer["code"] == 3
    assert answer["issues"][0]["path"] == ["ar"]
    assert answer["issues"][0]["expected"] == ["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"]


def test_a_ratio_the_model_lacks_is_code_3(client):
    answer = create_error(client, {"model": "tiny-512", "prompt": "x", "ar": "21:9"})
    assert answer["code"] == 3 and answer["issues"][0]["expected"] == ["1:1", "16:9", "9:16"]


def test_images_for_a_model_that_takes_none_is_code_3(client):
    answer = create_error(client, {**GOOD, "images": ["https://example.com/ref.png"]})
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["images"]


def test_an_image_that_is_not_a_url_is_code_3(client):
    answer = create_error(client, {**GOOD, "images": ["not a url"]})
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["images", 0]


def test_unknown_model_is_code_3_listing_the_models_of_the_key(client, darkroom):
    answer = create_error(client, {**GOOD, "model": "dall-e-9"})
    assert answer["code"] == 3
    assert answer["issues"][0]["path"] == ["model"]
    assert answer["issues"][0]["expected"] == ["google-imagen-3", "tiny-512"]
    limited = darkroom.create_key("--models", "tiny-512")
    answer = httpx.post(
        f"{darkroom.base_url}/v1/media/create",
        json={**GOOD, "model": "dall-e-9"},
        headers={"Authorization": limited},
    ).json()
    assert answer["issues"][0]["expected"] == ["tiny-512"]


@pytest.mark.parametrize(
    "task_id", ["abc", "6880F043E6060500018821DE", "6880f043e6060500018821dz", "x" * 24, "1" * 25]
)
def test_a_task_id_that_is_not_24_hex_is_code_3(client, task_id):
    for answer in (
        post(client, "/v1/media/result", json={"task_id": task_id}),
        client.get("/v1/media/result", params={"task_id": task_id}).json(),
    ):
        assert answer["code"] == 3 and answer["issues"][0]["path"] == ["task_id"]


@pytest.mark.parametrize("body", [{}, {"task_id": 12}, {"task_id": None}, {"id": "x"}])
def test_missing_or_mistyped_task_id_is_code_3(client, body):
    assert post(client, "/v1/media/result", json=body)["code"] == 3


def test_a_prompt_with_a_lone_surrogate_is_code_3(client):
    # Valid JSON, but half of a UTF-16 surrogate pair is no text a database can store.
    body = b'{"model": "google-imagen-3", "prompt": "a \\ud800 lighthouse"}'
    answer = post(
        client, "/v1/media/create", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["prompt"]


@pytest.mark.parametrize(
    "content",
    [b"null", b'"text"', b"123", b"[]", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe{}", b"{NaN}"],
)
def test_odd_bodies_are_code_3_never_500(client, content):
    for path in ("/v1/media/create", "/v1/media/result"):
        response = client.post(path, content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 200
        assert response.json()["code"] == 3


# -- code 4: no such task ---------------------------------------------------------------------


def test_unknown_task_is_code_4(client):
    answer = post(client, "/v1/media/result", json={"task_id": "6880f043e6060500018821de"})
    assert answer["code"] == 4


# -- code 5: balance --------------------------------------------------------------------------


def test_a_key_out_of_credits_is_code_5(darkroom):
    key = darkroom.create_key("--credits", "1")
    url = f"{darkroom.base_url}/v1/media/create"
    headers = {"Authorization": key}
    assert httpx.post(url, json=GOOD, headers=headers).json()["code"] == 0
    answer = httpx.post(url, json=GOOD, headers=headers).json()
    assert answer["code"] == 5 and "credits" in answer["message"]


# -- code 7: model not allowed ------------------------------------------------------------------


def test_a_model_the_key_may_not_use_is_code_7(darkroom):
    key = darkroom.create_key("--models", "tiny-512")
    answer = httpx.post(
        f"{darkroom.base_url}/v1/media/create", json=GOOD, headers={"Authorization": key}
    ).json()
    assert answer["code"] == 7 and "google-imagen-3" in answer["message"]


# -- code 99: no such method ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/media/create"),
        ("PUT", "/v1/media/create"),
        ("DELETE", "/v1/media/result"),
        ("POST", "/v1/media/upscale"),
        ("GET", "/v1/nothing/here"),
    ],
)
def test_unknown_method_or_path_under_v1_is_code_99(client, method, path):
    response = client.request(method, path, json={})
    assert response.status_code == 200
    assert response.json()["code"] == 99


# -- codes 1001 and 1002: content safety --------------------------------------------------------


def test_a_prompt_failing_the_safety_check_is_code_1002(client):
    answer = create_error(client, {**GOOD, "prompt": "a ForbiddenWord in the forest"})
    assert answer["code"] == 1002


def test_sensitive_content_elsewhere_in_the_request_is_code_1001(client):
    answer = create_error(client, {**GOOD, "negative_prompt": "forbiddenword"})
    assert answer["code"] == 1001


# -- codes 6 and 1: servers of their own ---------------------------------------------------------


def test_a_full_queue_is_code_6(tmp_path):
    with running(tmp_path, CONFIGS / "test.toml", "--workers", "0", max_queue=2) as server:
        key = server.create_key()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            assert [post_ok(client, GOOD)["status"] for _ in range(2)] == ["idle", "idle"]
            answer = post(client, "/v1/media/create", json=GOOD)
            assert answer["code"] == 6 and "try again" in answer["message"]


def test_an_internal_fault_is_code_1_not_a_500(tmp_path):
    with running(tmp_path, CONFIGS / "test.toml", "--workers", "0") as server:
        key = server.create_key()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            post_ok(client, GOOD)
            # An operator's mistake the server cannot recover from: the task table vanishes.
            with sqlite3.connect(tmp_path / "darkroom.db") as db:
                db.execute("ALTER TABLE tasks RENAME TO tasks_lost")
            answer = post(client, "/v1/media/create", json=GOOD)
            assert answer["code"] == 1 and "Internal" in answer["message"]
            assert "Traceback" not in answer["message"]
            # Once the operator puts it back, the same client goes on working.
            with sqlite3.connect(tmp_path / "darkroom.db") as db:
                db.execute("ALTER TABLE tasks_lost RENAME TO tasks")
            assert post_ok(client, GOOD)["status"] == "idle"
        faults = [line for line in server.logs().splitlines() if '"internal error"' in line]
        assert faults and all('"path": "/v1/media/create"' in line for line in faults)
        assert all('"method": "POST"' in line for line in faults)
