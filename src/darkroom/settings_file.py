"""The optional TOML file (`--config FILE` or DARKROOM_CONFIG): the model catalog and the
content policy. Without one, Darkroom serves the seed's model so a fresh install does its job:
on Google when Google credentials are configured, on the demo `tiny` engine otherwise."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darkroom.engines.catalog import Catalog, CatalogError
from darkroom.safety import ContentPolicy

DEMO_MODELS = {"google-imagen-3": {"engine": "tiny", "max_batch": 4}}
# Vertex AI serves the seed's very model; the Gemini API no longer offers Imagen, so an API key
# alone gets Google's Gemini image model under the same id (docs/models.md says so).
VERTEX_MODELS = {
    "google-imagen-3": {
        "engine": "google",
        "backend": "vertex",
        "upstream_model": "imagen-3.0-generate-002",
        "max_batch": 4,
    }
}
GEMINI_API_MODELS = {
    "google-imagen-3": {
        "engine": "google",
        "backend": "gemini",
        "upstream_model": "gemini-2.5-flash-image",
        "max_batch": 4,
    }
}
# Where `gcloud auth application-default login` leaves credentials, under the home folder.
ADC_FILE = ".config/gcloud/application_default_credentials.json"


def default_models(env: Mapping[str, str] = os.environ) -> dict[str, dict[str, Any]]:
    """The catalog used without a settings file, chosen from the environment alone (an API
    node must not import Google's SDK to decide)."""
    gcloud_login = Path(env.get("HOME", "~")) / ADC_FILE
    has_credentials = bool(env.get("GOOGLE_APPLICATION_CREDENTIALS")) or gcloud_login.is_file()
    if env.get("GOOGLE_CLOUD_PROJECT") and has_credentials:
        return VERTEX_MODELS
    if env.get("GEMINI_API_KEY") or env.get("GOOGLE_API_KEY"):
        return GEMINI_API_MODELS
    return DEMO_MODELS


@dataclass
class SettingsFile:
    catalog: Catalog
    policy: ContentPolicy = field(default_factory=ContentPolicy)

    @classmethod
    def load(cls, path: Path | None) -> SettingsFile:
        if path is None:
            return cls(Catalog.from_dict(default_models()))
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise CatalogError(f"cannot read {path}: {exc}") from exc
        safety = data.get("safety", {})
        return cls(
            Catalog.from_dict(data.get("models", {})),
            ContentPolicy(safety.get("blocked_terms", [])),
        )
