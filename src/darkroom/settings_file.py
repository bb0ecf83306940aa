"""The optional TOML file (`--config FILE` or DARKROOM_CONFIG): the model catalog and the
content policy. Without one, Darkroom serves the demo model so a fresh install does its job."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from darkroom.engines.catalog import Catalog, CatalogError
from darkroom.safety import ContentPolicy

DEMO_MODELS = {"google-imagen-3": {"engine": "tiny", "max_batch": 4}}


@dataclass
class SettingsFile:
    catalog: Catalog
    policy: ContentPolicy = field(default_factory=ContentPolicy)

    @classmethod
    def load(cls, path: Path | None) -> SettingsFile:
        if path is None:
            return cls(Catalog.from_dict(DEMO_MODELS))
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"cannot read {path}: {exc}") from exc
        safety = data.get("safety", {})
        return cls(
            Catalog.from_dict(data.get("models", {})),
            ContentPolicy(safety.get("blocked_terms", [])),
        )
