"""The options of the `demo` engine (demo.py) and the operator's choice of its model, read by
every node: kept apart from the engine, which imports torch and huggingface_hub.

`DARKROOM_DEMO_MODEL` chooses what the demo draws with:

- `auto` (the default): the entry's `hub_model` (SD-Turbo) downloaded from the Hugging Face
  hub, or the random-weight `tiny` pipeline when the hub cannot be reached;
- `tiny`: the random-weight pipeline, without asking the hub;
- a hub id (`owner/name`): that diffusers text-to-image model, with the same fallback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import Field

from darkroom.engines.local.options import DTYPES
from darkroom.engines.options import EngineOptions

AUTO = "auto"
TINY = "tiny"
# SD-Turbo: SD 2.1 distilled to draw in one step at 512 x 512 (docs/models.md, "The demo model").
SD_TURBO = "stabilityai/sd-turbo"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
CHOICE_PATTERN = rf"^({AUTO}|{TINY}|[A-Za-z0-9][\w.-]*/[\w.-]+)$"


class DemoOptions(EngineOptions):
    """A real model from the hub where it can be had, else the random-weight pipeline."""

    hub_model: str = Field(SD_TURBO, pattern=HUB_ID.pattern)
    """What `auto` downloads."""
    draw_size: int = Field(512, ge=64)
    """The side of the square the model draws at (its native size); results are resized to the
    entry's sizes."""
    steps: int | None = Field(None, ge=1)
    """Default: the family's (one step for SD-Turbo)."""
    guidance: float | None = Field(None, ge=0)
    dtype: str = Field("auto", pattern=rf"^(auto|{'|'.join(DTYPES)})$")
    device: str = Field("auto", pattern=r"^(auto|[a-z]+(:\d+)?)$")
    """auto: cuda when present, else cpu."""


def demo_choice(env: Mapping[str, str] = os.environ) -> str:
    """`DARKROOM_DEMO_MODEL` as the operator set it (auto when unset or blank)."""
    return env.get("DARKROOM_DEMO_MODEL", "").strip() or AUTO


def hub_id_for(choice: str, options: DemoOptions) -> str | None:
    """The hub model a choice asks for; None for the random-weight pipeline."""
    if choice == TINY:
        return None
    return options.hub_model if choice == AUTO else choice
