"""The per-model rules a create request is checked against (ratios, default_ratio, max_prompt)
are read from the catalog and checked when it loads: a value outside the spec's ranges is a
CatalogError that names the model, and a model's prompt cap is code 3's `too_big` bound."""

from __future__ import annotations

from typing import Any

import pytest

from darkroom.api.requests import Choices, parse_create
from darkroom.engines.catalog import MAX_PROMPT, Catalog, ModelSpec
from darkroom.engines.sizes import RATIOS
from darkroom.errors import CatalogError, InvalidRequest

FIVE = ["1:1", "16:9", "9:16", "4:3", "3:4"]


def load(**rules: Any) -> ModelSpec:
    return Catalog.from_dict({"short-prompts": {"engine": "tiny", **rules}})["short-prompts"]


def test_an_entry_without_rules_takes_the_specs_ranges() -> None:
    spec = load()
    assert (spec.ratios, spec.default_ratio, spec.max_prompt) == (RATIOS, "1:1", MAX_PROMPT)


def test_a_ratio_subset_and_a_prompt_cap_are_read_as_written() -> None:
    spec = load(ratios=FIVE, default_ratio="16:9", max_prompt=400)
    assert (spec.ratios, spec.default_ratio, spec.max_prompt) == (tuple(FIVE), "16:9", 400)


def test_a_subset_without_1_1_defaults_to_its_first_ratio() -> None:
    assert load(ratios=["16:9", "9:16"]).default_ratio == "16:9"


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({"max_prompt": 0}, "max_prompt"),
        ({"max_prompt": 4001}, "max_prompt"),
        ({"max_prompt": "400"}, "max_prompt"),
        ({"max_prompt": True}, "max_prompt"),
        ({"max_prompt": 40.5}, "max_prompt"),
        ({"ratios": []}, "ratios"),
        ({"ratios": "1:1"}, "ratios"),
        ({"ratios": ["1:1", "2:1"]}, "unknown ratios ['2:1']"),
        ({"ratios": ["16:9"], "default_ratio": "1:1"}, "default_ratio"),
        ({"default_ratio": "5:4"}, "default_ratio"),
    ],
)
def test_a_rule_out_of_range_is_a_catalog_error_naming_the_model(
    rules: dict[str, Any], words: str
) -> None:
    with pytest.raises(CatalogError, match="short-prompts") as caught:
        load(**rules)
    assert words in str(caught.value)


def choices(max_prompt: int) -> Choices:
    return Choices(["short-prompts"], {"short-prompts": RATIOS}, {"short-prompts": max_prompt})


def test_a_prompt_over_the_models_cap_is_too_big_naming_the_cap() -> None:
    body = {"model": "short-prompts", "prompt": "x" * 401}
    with pytest.raises(InvalidRequest) as caught:
        parse_create(body, choices(400))
    [issue] = caught.value.issues
    assert issue["code"] == "too_big" and issue["path"] == ["prompt"]
    assert issue["maximum"] == 400 and "400" in issue["message"]


def test_the_cap_counts_the_prompt_after_trimming() -> None:
    body = {"model": "short-prompts", "prompt": "  " + "x" * 400 + "  "}
    assert parse_create(body, choices(400)).model == "short-prompts"
