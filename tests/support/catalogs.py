"""Model catalogs for tests: the shared test catalog file, tiny random-weight pipelines saved
as folders, and catalog files written from entries."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from darkroom.engines.local.random_weights import build

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def tiny_folder(family: str, root: Path) -> Path:
    return build(family, root / f"tiny-{family}")


def write_catalog(path: Path, models: dict[str, dict[str, Any]]) -> Path:
    """A settings file with these catalog entries (TOML written by hand: values are simple)."""
    lines = []
    for model_id, entry in models.items():
        lines.append(f'[models."{model_id}"]')
        lines += [f"{key} = {json.dumps(value)}" for key, value in entry.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


SLOW_STEPS = 1000  # a minute or more of work on a CPU unless canceled


def slow_catalog(root: Path) -> Path:
    """A slow diffusers model, a slow tiny one, and a quick one."""
    folder = str(tiny_folder("sd15", root / "models"))
    diffusers = {"engine": "diffusers", "source": folder, "native_size": 128}
    return write_catalog(
        root / "models.toml",
        {
            "slow-sd": {**diffusers, "steps": SLOW_STEPS, "price": 1},
            "slow-tiny": {"engine": "tiny", "native_size": 512, "steps": SLOW_STEPS},
            "quick-sd": {**diffusers, "steps": 1},
        },
    )
