"""The catalog's image rules: how many reference images a model takes (its entry's
`max_images`, else what its engine knows of the model), and the size of an edit that keeps its
input's shape (`images_override_ar`)."""

from __future__ import annotations

import pytest

from darkroom.engines.catalog import Catalog, CatalogError

ENTRIES = {
    "tiny": {"engine": "tiny"},
    "tiny-edit": {"engine": "tiny", "max_images": 1, "images_override_ar": True},
    "imagen": {"engine": "google"},
    "gemini": {"engine": "google", "upstream_model": "gemini-2.5-flash-image"},
    "gpt-image": {"engine": "openai"},
    "dall-e-2": {"engine": "openai", "upstream_model": "dall-e-2"},
    "dall-e-3": {"engine": "openai", "upstream_model": "dall-e-3"},
    "relay": {"engine": "relay", "base_url": "http://127.0.0.1:9"},
    "relay-edit": {"engine": "relay", "base_url": "http://127.0.0.1:9", "max_images": 4},
}


def test_each_engine_takes_the_images_its_models_take_unless_the_entry_says():
    catalog = Catalog.from_dict(ENTRIES)
    counts = {model_id: catalog[model_id].max_images for model_id in ENTRIES}
    assert counts == {
        "tiny": 0,
        "tiny-edit": 1,
        "imagen": 0,
        "gemini": 3,
        "gpt-image": 16,
        "dall-e-2": 1,
        "dall-e-3": 0,
        "relay": 0,
        "relay-edit": 4,
    }
    assert not catalog["imagen"].takes_images and catalog["gemini"].takes_images


@pytest.mark.parametrize("count", [-1, "two", 1.5])
def test_a_max_images_that_is_not_a_count_stops_the_node(count):
    with pytest.raises(CatalogError, match='model "m": max_images'):
        Catalog.from_dict({"m": {"engine": "tiny", "max_images": count}})


@pytest.mark.parametrize(
    ("picture", "size"),
    [((1600, 900), (1408, 768)), ((900, 1600), (768, 1408)), ((1000, 990), (1024, 1024))],
)
def test_an_edit_takes_the_model_s_ratio_nearest_its_image(picture, size):
    spec = Catalog.from_dict({"m": {"engine": "tiny", "images_override_ar": True}})["m"]
    assert spec.size_for_image(*picture) == size


def test_an_edit_of_a_model_with_fewer_ratios_snaps_to_those():
    entry = {"engine": "tiny", "native_size": 512, "ratios": ["1:1", "4:3", "3:4"]}
    spec = Catalog.from_dict({"m": entry})["m"]
    assert spec.size_for_image(2100, 900) == spec.size_for("4:3")
