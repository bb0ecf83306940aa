"""Each built-in engine's options are checked when the catalog loads: a value that cannot work
is a CatalogError naming the model and the option, on every node, without torch or an SDK."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from darkroom.engines.catalog import BUILT_IN_ENGINES, Catalog, ModelSpec
from darkroom.engines.local.options import DiffusersOptions, TinyOptions
from darkroom.engines.sizes import RATIOS
from darkroom.engines.upstream.options import RelayOptions
from darkroom.errors import CatalogError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "models.md"
RELAY = {"engine": "relay", "base_url": "http://127.0.0.1:9"}


def load(entry: dict[str, Any], model_id: str = "painter") -> ModelSpec:
    return Catalog.from_dict({model_id: entry})[model_id]


@pytest.mark.parametrize(
    ("entry", "option"),
    [
        ({"engine": "tiny", "steps": "many"}, "steps"),
        ({"engine": "tiny", "scale": 0}, "scale"),
        ({"engine": "tiny", "stpes": 4}, "stpes"),
        ({"engine": "diffusers", "source": "x", "dtype": "float8"}, "dtype"),
        ({"engine": "diffusers", "source": "x", "guidance": "strong"}, "guidance"),
        ({"engine": "diffusers"}, "source"),
        ({"engine": "google", "backend": "cloud"}, "backend"),
        ({"engine": "google", "aspect_ratios": ["wide"]}, "aspect_ratios.0"),
        ({"engine": "openai", "max_in_flight": 0}, "max_in_flight"),
        ({"engine": "openai", "sizes": ["big"]}, "sizes.0"),
        ({"engine": "openai", "timeout_seconds": "soon"}, "timeout_seconds"),
        ({**RELAY, "attempts": 0}, "attempts"),
        ({**RELAY, "poll_seconds": -1}, "poll_seconds"),
        ({**RELAY, "base_url": "ftp://example.com"}, "base_url"),
        ({"engine": "relay"}, "base_url"),
    ],
)
def test_a_bad_option_names_the_model_and_the_option(entry, option):
    with pytest.raises(CatalogError) as raised:
        load(entry)
    message = str(raised.value)
    assert message.startswith('model "painter": ')
    assert f"`{option}`" in message
    assert entry["engine"] in message or "got" in message


def test_the_message_says_what_was_wrong_and_what_was_given():
    with pytest.raises(CatalogError, match=r"option `dtype`: dtype must be auto or one of"):
        load({"engine": "diffusers", "source": "x", "dtype": "float8"})
    with pytest.raises(CatalogError, match=r"got 'many'"):
        load({"engine": "tiny", "steps": "many"})
    with pytest.raises(CatalogError, match=r"the tiny engine has no option `stpes`"):
        load({"engine": "tiny", "stpes": 4})
    with pytest.raises(CatalogError, match=r"the diffusers engine needs `source`"):
        load({"engine": "diffusers"})


def test_valid_options_are_typed_with_their_defaults():
    tiny = load({"engine": "tiny", "steps": 2})
    assert tiny.engine_options == TinyOptions(steps=2)
    assert (tiny.engine_options.guidance, tiny.engine_options.scale) == (5.0, 4)
    local = load({"engine": "diffusers", "source": "x", "dtype": "BF16"})
    assert isinstance(local.engine_options, DiffusersOptions)
    assert local.engine_options.dtype == "bf16"
    relay = RelayOptions.of(load(RELAY))
    assert (relay.aspect_ratios, relay.poll_seconds, relay.attempts) == (RATIOS, 2.0, 4)


def test_spec_options_stay_as_written():
    spec = load({"engine": "google", "backend": "gemini", "max_batch": 4})
    assert spec.options == {"backend": "gemini"}
    assert spec.max_batch == 4


def test_a_custom_engine_keeps_free_form_options():
    spec = load({"engine": "mypackage.engines:open_engine", "anything": [1, "two"]})
    assert spec.engine_options is None
    assert spec.options == {"anything": [1, "two"]}


def test_options_of_a_spec_built_by_hand_are_parsed_then():
    spec = ModelSpec(id="hand", engine="tiny", options={"steps": 3})
    assert TinyOptions.of(spec).steps == 3
    with pytest.raises(CatalogError, match='model "hand": option `steps`'):
        TinyOptions.of(ModelSpec(id="hand", engine="tiny", options={"steps": 0}))


def test_every_option_is_documented():
    documented = set(re.findall(r"^\| `([a-z_]+)`", DOCS.read_text(), re.MULTILINE))
    documented |= {
        name
        for row in re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)+) \|", DOCS.read_text(), re.M)
        for name in re.findall(r"`([a-z_]+)`", row)
    }
    for name, built_in in BUILT_IN_ENGINES.items():
        missing = set(built_in.options.model_fields) - documented
        assert not missing, f"docs/models.md does not list {name}'s options {sorted(missing)}"


PROBE = """
import json, sys
from darkroom.engines.catalog import Catalog
Catalog.from_dict({
    "t": {"engine": "tiny"},
    "d": {"engine": "diffusers", "source": "x"},
    "g": {"engine": "google"},
    "o": {"engine": "openai"},
    "r": {"engine": "relay", "base_url": "http://127.0.0.1:9"},
})
heavy = {"torch", "diffusers", "transformers", "google", "openai", "tenacity"}
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)))
"""


def test_checking_every_engine_s_options_imports_nothing_heavy():
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(probe.stdout.strip().splitlines()[-1]) == []
