"""Create requests in memory: the aliases the hosted service's clients send (`image`,
`aspect_ratio`) mean what the spec says, and every problem is one of zod's issues."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from darkroom.api.issues import from_pydantic, json_type
from darkroom.api.requests import Choices, CreateRequest, parse_create
from darkroom.errors import InvalidRequest

CHOICES = Choices(
    models=["google-imagen-3", "tiny-512"],
    ratios={"google-imagen-3": ("1:1", "16:9", "9:16"), "tiny-512": ("1:1",), "locked": ("1:1",)},
)
GOOD = {"model": "google-imagen-3", "prompt": "a lighthouse"}
URL = "https://example.com/a.png"


def parsed(**fields: Any) -> CreateRequest:
    return parse_create({**GOOD, **fields}, CHOICES)


def issues_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(InvalidRequest) as caught:
        parse_create(body, CHOICES)
    assert caught.value.issues
    return caught.value.issues


def test_one_image_is_the_same_as_a_list_of_it():
    request = parsed(image=URL)
    assert request.images == [URL] and request.sent_as("images") == "image"


def test_images_win_over_image():
    request = parsed(images=[URL], image="https://example.com/other.png")
    assert request.images == [URL] and request.sent_as("images") == "images"


def test_aspect_ratio_is_read_as_ar_only_when_ar_is_absent():
    assert parsed(aspect_ratio="16:9").ar == "16:9"
    assert parsed(ar="9:16", aspect_ratio="16:9").ar == "9:16"
    assert parsed().ar is None and parsed().sent_as("ar") == "ar"


def test_a_model_the_key_may_not_use_is_left_to_code_7():
    # It is served (it has ratios), so it is no unknown value; the route answers code 7.
    assert parsed(model="locked").model == "locked"


@pytest.mark.parametrize(
    ("body", "code", "path"),
    [
        ({**GOOD, "image": 7}, "invalid_type", ["image"]),
        ({**GOOD, "aspect_ratio": ["16:9"]}, "invalid_type", ["aspect_ratio"]),
        ({**GOOD, "aspect_ratio": "2:1"}, "invalid_enum_value", ["aspect_ratio"]),
        ({**GOOD, "image": "not a url"}, "custom", ["image"]),
        ({**GOOD, "negative_prompt": "x" * 4001}, "too_big", ["negative_prompt"]),
        ({**GOOD, "prompt": "a \x00 b"}, "custom", ["prompt"]),
    ],
)
def test_each_problem_is_one_of_zods_issues(body, code, path):
    [issue] = issues_of(body)
    assert (issue["code"], issue["path"]) == (code, path)


def test_a_ratio_of_a_wrong_type_names_the_models_ratios():
    [issue] = issues_of({**GOOD, "aspect_ratio": 16})
    assert issue["expected"] == "'1:1' | '16:9' | '9:16'"
    assert issue["options"] == ["1:1", "16:9", "9:16"]


def test_a_ratio_of_an_unknown_model_is_not_judged():
    [issue] = issues_of({**GOOD, "model": "dall-e-9", "ar": "2:1"})
    assert issue["path"] == ["model"]


def test_image_links_are_checked_even_when_another_field_has_a_wrong_type():
    issues = issues_of({**GOOD, "seed": "7", "images": ["not a url"]})
    assert [(i["code"], i["path"]) for i in issues] == [
        ("invalid_type", ["seed"]),
        ("custom", ["images", 0]),
    ]


def test_an_unexpected_pydantic_error_is_a_custom_issue_with_its_words():
    error = {"type": "value_error", "loc": ("body", "x"), "msg": "Value error, nope", "input": 1}
    assert from_pydantic([error], {}, {}) == [
        {"code": "custom", "path": ["x"], "message": "Value error, nope"}
    ]


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (None, "null"),
        (True, "boolean"),
        (1, "number"),
        (1.5, "number"),
        (float("nan"), "nan"),
        ("x", "string"),
        ([], "array"),
        ({}, "object"),
    ],
)
def test_json_values_have_zods_type_names(value, name):
    assert json_type(value) == name


def test_a_base64_data_url_of_an_image_is_a_reference_image():
    url = "data:image/png;base64," + base64.b64encode(b"\x89PNG...").decode()
    assert parsed(images=[url]).images == [url]


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("data:text/plain;base64,aGk=", "data: URL of text/plain, not an image"),
        ("data:image/png,rawbytes", "not base64"),
        ("data:image/png;base64,@@@", "base64 is malformed"),
        ("ftp://example.com/a.png", "is not an http(s) URL or a data:image"),
    ],
)
def test_an_image_that_is_neither_http_nor_an_image_data_url_is_code_3(url, words):
    [issue] = issues_of({**GOOD, "images": [URL, url]})
    assert (issue["code"], issue["path"]) == ("custom", ["images", 1])
    assert words in issue["message"]
