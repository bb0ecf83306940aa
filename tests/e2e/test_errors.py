"""Every error code of the spec, provoked over HTTP against the real server. API-level errors
are HTTP 200 with a non-zero code and a message that begins with the hosted service's sentence
for the code, then says in plain words what is wrong; code 3's issues are zod's; nothing a
client sends is a 500."""

from __future__ import annotations

import sqlite3

import httpx
import pytest

from tests.support.catalogs import CONFIGS
from tests.support.keys import within_key_cache
from tests.support.servers import running

GOOD = {"model": "google-imagen-3", "prompt": "a lighthouse at dusk"}
MODELS = ["google-imagen-3", "tiny-512"]
RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "21:9", "9:21"]

# The hosted service's sentences (spec "Errors"), written out here rather than read from
# darkroom.errors, so that a wrong word there fails these tests.
SENTENCES = {
    1: "Internal server error.",
    2: "Invalid token, check if authorization header has a valid value.",
    3: "Invalid input, check schema issues.",
    4: "Record not found.",
    5: "Insufficient balance, check account balance.",
    6: "Service on heavy load. Try again later.",
    7: "Has organization restrict for this model.",
    99: "API method not found, please check url you call.",
    1001: "Sensitive content has been detected in your request or uploaded files.",
    1002: "Your prompt did not pass the content safety check.",
}


def assert_worded(answer: dict, code: int) -> None:
    """The answer has this code, and its message is the code's sentence, then the details."""
    assert answer["code"] == code, answer
    sentence = SENTENCES[code]
    assert answer["message"].startswith(sentence + " "), answer["message"]
    assert len(answer["message"]) > len(sentence) + 5  # Darkroom says what exactly is wrong


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


# -- every code's sentence -----------------------------------------------------------------------


def provoke(code: int, darkroom, client: httpx.Client) -> dict:
    """An answer with this code from the shared server (codes 1 and 6 need servers of their
    own, below)."""
    url = f"{darkroom.base_url}/v1/media/create"
    if code == 2:
        return httpx.post(url, json=GOOD, headers={"Authorization": "dk_not-a-real-key"}).json()
    if code == 5:
        key = darkroom.create_key("--credits", "0")
        return httpx.post(url, json=GOOD, headers={"Authorization": key}).json()
    if code == 7:
        key = darkroom.create_key("--models", "tiny-512")
        return httpx.post(url, json=GOOD, headers={"Authorization": key}).json()
    requests = {
        3: ("POST", "/v1/media/create", {}),
        4: ("POST", "/v1/media/result", {"task_id": "6880f043e6060500018821de"}),
        99: ("POST", "/v1/media/upscale", GOOD),
        1001: ("POST", "/v1/media/create", {**GOOD, "negative_prompt": "forbiddenword"}),
        1002: ("POST", "/v1/media/create", {**GOOD, "prompt": "a ForbiddenWord"}),
    }
    method, path, body = requests[code]
    return client.request(method, path, json=body).json()


@pytest.mark.parametrize("code", [2, 3, 4, 5, 7, 99, 1001, 1002])
def test_each_codes_message_begins_with_the_hosted_services_sentence(darkroom, client, code):
    assert_worded(provoke(code, darkroom, client), code)


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
    within_key_cache(
        lambda: httpx.post(url, json=GOOD, headers=headers).json()["code"] == 2, "the revocation"
    )


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


def joined(values: list[str]) -> str:
    return " | ".join(f"'{value}'" for value in values)


@pytest.mark.parametrize(
    ("field", "value", "expected", "received"),
    [
        ("model", 42, joined(MODELS), "number"),
        ("prompt", ["a", "list"], "string", "array"),
        ("prompt", None, "string", "null"),
        ("ar", 169, joined(RATIOS), "number"),
        ("aspect_ratio", False, joined(RATIOS), "boolean"),
        ("images", "http://example.com/a.png", "array", "string"),
        ("image", ["http://example.com/a.png"], "string", "array"),
        ("seed", "7", "number", "string"),
        ("seed", 7.5, "integer", "float"),
        ("negative_prompt", {"no": "dict"}, "string", "object"),
    ],
)
def test_a_wrong_type_is_code_3_with_zods_invalid_type_issue(
    client, field, value, expected, received
):
    answer = create_error(client, {**GOOD, field: value})
    assert_worded(answer, 3)
    [issue] = answer["issues"]
    options = MODELS if field == "model" else RATIOS
    fixed_set = {"options": options} if field in ("model", "ar", "aspect_ratio") else {}
    assert issue == {
        "code": "invalid_type",
        "expected": expected,
        "received": received,
        "path": [field],
        "message": f"Expected {expected}, received {received}",
        **fixed_set,
    }
    assert issue["message"] in answer["message"]


def test_a_wrong_type_inside_a_list_names_its_place(client):
    [issue] = create_error(client, {**GOOD, "images": ["https://example.com/a.png", 7]})["issues"]
    assert (issue["code"], issue["path"]) == ("invalid_type", ["images", 1])
    assert (issue["expected"], issue["received"]) == ("string", "number")


def test_a_number_out_of_range_is_zods_too_small(client):
    [issue] = create_error(client, {**GOOD, "seed": -1})["issues"]
    assert issue == {
        "code": "too_small",
        "minimum": 0,
        "type": "number",
        "inclusive": True,
        "exact": False,
        "path": ["seed"],
        "message": "Number must be greater than or equal to 0",
    }


def test_an_empty_body_lists_the_missing_fields_and_the_keys_model_ids(client, darkroom):
    answer = create_error(client, {})
    assert_worded(answer, 3)
    assert answer["issues"] == [
        {
            "code": "invalid_type",
            "expected": joined(MODELS),
            "received": "undefined",
            "path": ["model"],
            "message": "Required",
            "options": MODELS,
        },
        {
            "code": "invalid_type",
            "expected": "string",
            "received": "undefined",
            "path": ["prompt"],
            "message": "Required",
        },
    ]
    # A client reads its model ids from `expected`, as the hosted service's clients do.
    model_ids = answer["issues"][0]["expected"].replace("'", "").split(" | ")
    assert model_ids == MODELS
    limited = darkroom.create_key("--models", "tiny-512")
    answer = httpx.post(
        f"{darkroom.base_url}/v1/media/create", json={}, headers={"Authorization": limited}
    ).json()
    assert answer["issues"][0]["expected"] == "'tiny-512'"
    assert answer["issues"][0]["options"] == ["tiny-512"]


@pytest.mark.parametrize(
    ("prompt", "code", "bound"),
    [
        ("", "too_small", {"minimum": 1}),
        ("   \n\t ", "too_small", {"minimum": 1}),
        ("x" * 4001, "too_big", {"maximum": 4000}),
        (" " + "x" * 4001, "too_big", {"maximum": 4000}),
    ],
)
def test_prompt_out_of_bounds_after_trimming_is_zods_length_issue(client, prompt, code, bound):
    [issue] = create_error(client, {**GOOD, "prompt": prompt})["issues"]
    words = "at least 1" if code == "too_small" else "at most 4000"
    assert issue == {
        "code": code,
        **bound,
        "type": "string",
        "inclusive": True,
        "exact": False,
        "path": ["prompt"],
        "message": f"String must contain {words} character(s)",
    }


def test_prompt_of_4000_characters_padded_with_spaces_is_accepted(client):
    answer = post_ok(client, {**GOOD, "prompt": "  " + "x" * 4000 + "  "})
    assert answer["status"] == "idle"


def post_ok(client: httpx.Client, body: dict) -> dict:
    answer = client.post("/v1/media/create", json=body).json()
    assert answer["code"] == 0, answer
    return answer


def enum_issue(field: str, options: list[str], received: str) -> dict:
    """zod's issue for a value outside a fixed set, with `expected` as the spec adds it."""
    return {
        "code": "invalid_enum_value",
        "received": received,
        "options": options,
        "expected": joined(options),
        "path": [field],
        "message": f"Invalid enum value. Expected {joined(options)}, received '{received}'",
    }


def test_unknown_ratio_is_code_3_listing_the_ratios(client):
    answer = create_error(client, {**GOOD, "ar": "2:1"})
    assert_worded(answer, 3)
    assert answer["issues"] == [enum_issue("ar", RATIOS, "2:1")]


def test_a_ratio_the_model_lacks_is_code_3(client):
    answer = create_error(client, {"model": "tiny-512", "prompt": "x", "ar": "21:9"})
    assert answer["issues"] == [enum_issue("ar", ["1:1", "16:9", "9:16"], "21:9")]


def test_aspect_ratio_is_checked_as_ar_under_its_own_name(client):
    answer = create_error(client, {"model": "tiny-512", "prompt": "x", "aspect_ratio": "21:9"})
    assert answer["issues"] == [enum_issue("aspect_ratio", ["1:1", "16:9", "9:16"], "21:9")]


def test_images_for_a_model_that_takes_none_is_code_3(client):
    answer = create_error(client, {**GOOD, "images": ["https://example.com/ref.png"]})
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["images"]
    assert answer["issues"][0]["code"] == "custom"


def test_one_image_is_read_as_images_and_refused_under_its_own_name(client):
    answer = create_error(client, {**GOOD, "image": "https://example.com/ref.png"})
    assert answer["code"] == 3 and answer["issues"][0]["path"] == ["image"]
    assert "does not take reference images" in answer["message"]


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [("images", ["not a url"], ["images", 0]), ("image", "ftp://example.com/a.png", ["image"])],
)
def test_an_image_that_is_not_a_url_is_code_3(client, field, value, path):
    answer = create_error(client, {**GOOD, field: value})
    assert answer["code"] == 3 and answer["issues"][0]["path"] == path
    assert answer["issues"][0]["code"] == "custom"


def test_unknown_model_is_code_3_listing_the_models_of_the_key(client, darkroom):
    answer = create_error(client, {**GOOD, "model": "dall-e-9"})
    assert_worded(answer, 3)
    assert answer["issues"] == [enum_issue("model", MODELS, "dall-e-9")]
    limited = darkroom.create_key("--models", "tiny-512")
    answer = httpx.post(
        f"{darkroom.base_url}/v1/media/create",
        json={**GOOD, "model": "dall-e-9"},
        headers={"Authorization": limited},
    ).json()
    assert answer["issues"] == [enum_issue("model", ["tiny-512"], "dall-e-9")]


def test_every_problem_of_a_request_is_answered_at_once(client):
    body = {"model": "dall-e-9", "prompt": "", "seed": "7"}
    answer = create_error(client, body)
    assert [i["path"] for i in answer["issues"]] == [["seed"], ["prompt"], ["model"]]


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


@pytest.mark.parametrize("char", ["\\ud800", "\\u0000"])
def test_a_prompt_a_database_cannot_store_is_code_3(client, char):
    # Valid JSON, but half of a UTF-16 surrogate pair is no text a database can store, and
    # PostgreSQL's text keeps no NUL.
    body = b'{"model": "google-imagen-3", "prompt": "a %s lighthouse"}' % char.encode()
    answer = post(
        client, "/v1/media/create", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer["code"] == 3
    [issue] = answer["issues"]
    assert (issue["code"], issue["path"]) == ("custom", ["prompt"])


@pytest.mark.parametrize("field", ["model", "ar"])
def test_an_unknown_value_with_a_lone_surrogate_is_echoed_escaped(client, field):
    # zod echoes the value it received; half of a surrogate pair is no UTF-8 to send back.
    body = b'{"model": "google-imagen-3", "prompt": "x", "%s": "a\\ud800"}' % field.encode()
    answer = post(
        client, "/v1/media/create", content=body, headers={"Content-Type": "application/json"}
    )
    assert_worded(answer, 3)
    [issue] = answer["issues"]
    assert issue["code"] == "invalid_enum_value" and issue["received"] == "a\\ud800"


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
    assert answer["code"] == 5 and "balance cannot pay" in answer["message"]


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
            assert_worded(answer, 6)
            assert "try again" in answer["message"]


def test_an_internal_fault_is_code_1_not_a_500(tmp_path):
    with running(tmp_path, CONFIGS / "test.toml", "--workers", "0") as server:
        key = server.create_key()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": key}) as client:
            post_ok(client, GOOD)
            # An operator's mistake the server cannot recover from: the task table vanishes.
            with sqlite3.connect(tmp_path / "darkroom.db") as db:
                db.execute("ALTER TABLE tasks RENAME TO tasks_lost")
            answer = post(client, "/v1/media/create", json=GOOD)
            assert_worded(answer, 1)
            assert "Traceback" not in answer["message"]
            # Once the operator puts it back, the same client goes on working.
            with sqlite3.connect(tmp_path / "darkroom.db") as db:
                db.execute("ALTER TABLE tasks_lost RENAME TO tasks")
            assert post_ok(client, GOOD)["status"] == "idle"
        faults = [line for line in server.logs().splitlines() if '"internal error"' in line]
        assert faults and all('"path": "/v1/media/create"' in line for line in faults)
        assert all('"method": "POST"' in line for line in faults)
