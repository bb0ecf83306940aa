"""Where the client finds its server and key: arguments first, then the environment."""

from __future__ import annotations

import os

from darkroom import __version__
from darkroom.client.errors import ConfigurationError

DEFAULT_MODEL = "google-imagen-3"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"  # where `darkroom serve` listens by default
BASE_URL_VARIABLE = "DARKROOM_BASE_URL"
API_KEY_VARIABLE = "DARKROOM_API_KEY"
USER_AGENT = f"darkroom-client/{__version__}"


def resolve_base_url(base_url: str | None) -> str:
    url = (base_url or os.environ.get(BASE_URL_VARIABLE) or DEFAULT_BASE_URL).strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"The base URL must start with http:// or https:// (got {url!r}); "
            f"pass base_url or set {BASE_URL_VARIABLE}."
        )
    return url.rstrip("/")


def resolve_api_key(api_key: str | None) -> str:
    key = (api_key or os.environ.get(API_KEY_VARIABLE) or "").strip()
    if not key:
        raise ConfigurationError(
            f"No API key: pass api_key or set {API_KEY_VARIABLE} "
            f"(an operator creates one with `darkroom keys create`)."
        )
    return key
