"""The options of the upstream engines (`google`, `openai`, `relay`), checked when the catalog
loads.

Kept apart from the engines, which import a provider's SDK and tenacity, since API nodes load the
catalog and must not (tests/integration/test_upstream_imports.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from darkroom.backoff import Backoff
from darkroom.engines.options import EngineOptions, HttpUrl, Ratio
from darkroom.engines.sizes import RATIOS

# A size as OpenAI writes it ("1536x1024").
Size = Annotated[str, StringConstraints(pattern=r"^\d+x\d+$")]

IMAGE_IN_FLIGHT = 4
"""Default `max_in_flight` of an image model: requests at once."""
JOBS_IN_FLIGHT = 2
"""Default `max_in_flight` of a video or audio model: jobs outstanding upstream at once.
Providers cap concurrent video and music jobs per project or key, low (a few at a time on new
projects); each job runs for minutes, so 2 keeps a queue moving without meeting that cap."""


class UpstreamOptions(EngineOptions):
    """What every upstream engine takes: its endpoint and the limits of its calls (calls.py)."""

    base_url: HttpUrl | None = None
    """Another endpoint: a proxy, a regional gateway, a test server."""
    max_in_flight: int | None = Field(None, ge=1)
    """Across the worker process: for an image model, requests in flight at once (default 4);
    for a video or audio model (Veo, the relay), jobs outstanding upstream at once, started and
    not finished (default 2). See `in_flight`."""
    timeout_seconds: float = Field(120.0, gt=0)
    """Limit for one request."""
    attempts: int = Field(4, ge=1)
    """Tries per request, the first included."""
    retry_initial_seconds: float = Field(1.0, ge=0)
    retry_max_seconds: float = Field(30.0, ge=0)

    def in_flight(self, kind: str) -> int:
        """The model's `max_in_flight`, or the default for its kind."""
        if self.max_in_flight is not None:
            return self.max_in_flight
        return IMAGE_IN_FLIGHT if kind == "image" else JOBS_IN_FLIGHT

    @property
    def backoff(self) -> Backoff:
        """Waits between tries: doubling from `retry_initial_seconds`, with jitter."""
        return Backoff(first=self.retry_initial_seconds, cap=self.retry_max_seconds)


GEMINI_MAX_IMAGES = 3


class GoogleOptions(UpstreamOptions):
    """Google's image models through the google-genai SDK (google_images.py)."""

    upstream_model: str = "imagen-3.0-generate-002"
    backend: Literal["vertex", "gemini"] | None = None
    """Default: vertex when a project is set, else gemini."""
    project: str | None = None
    location: str | None = None
    credentials_file: str | None = None
    api_key_env: str | None = None
    """Default: GEMINI_API_KEY, then GOOGLE_API_KEY."""
    aspect_ratios: tuple[Ratio, ...] | None = Field(None, min_length=1)
    """Default: Imagen's five, Gemini's ten, or Veo's two."""
    # Veo (kind = "video") runs as a long-running operation, polled as the relay polls.
    poll_seconds: float = Field(5.0, gt=0)
    """Veo: first wait between polls of an operation (at least MIN_POLL_SECONDS)."""
    poll_max_seconds: float = Field(20.0, gt=0)
    task_timeout_seconds: float = Field(900.0, gt=0)
    """Veo: how long to wait for an operation to finish."""

    @property
    def max_images(self) -> int:
        """Imagen draws from text alone; Gemini image models take reference images as parts of
        the request (3 is where gemini-2.5-flash-image works best; newer ones take more); Veo
        takes one, as the clip's first frame."""
        if self.upstream_model.startswith("veo"):
            return 1
        return 0 if self.upstream_model.startswith("imagen") else GEMINI_MAX_IMAGES


OPENAI_SIZES = ("1024x1024", "1536x1024", "1024x1536")
# Reference images per request: the edit endpoint takes 16 for gpt-image models, 1 for dall-e-2.
OPENAI_MAX_IMAGES = 16


class OpenAIOptions(UpstreamOptions):
    """OpenAI's image models through the openai SDK (openai_images.py)."""

    upstream_model: str = "gpt-image-1"
    api_key_env: str = "OPENAI_API_KEY"
    organization: str | None = None
    sizes: tuple[Size, ...] = Field(OPENAI_SIZES, min_length=1)
    """The sizes the model draws; each task asks for the nearest ratio."""
    quality: str | None = None
    moderation: str | None = None

    @property
    def max_images(self) -> int:
        """What OpenAI's edit endpoint takes for the model; dall-e-3 has no edits."""
        if self.upstream_model.startswith("dall-e"):
            return 1 if self.upstream_model == "dall-e-2" else 0
        return OPENAI_MAX_IMAGES


MIN_POLL_SECONDS = 1.0  # never poll one task more often than this


class RelayOptions(UpstreamOptions):
    """Another server of the media API (relay.py)."""

    base_url: HttpUrl
    """The upstream server, without /v1."""
    api_key_env: str = "DARKROOM_RELAY_API_KEY"
    upstream_model: str | None = None
    """Default: the same id."""
    aspect_ratios: tuple[Ratio, ...] = Field(RATIOS, min_length=1)
    poll_seconds: float = Field(2.0, gt=0)
    """First wait between polls of a task (at least MIN_POLL_SECONDS)."""
    poll_max_seconds: float = Field(10.0, gt=0)
    task_timeout_seconds: float = Field(900.0, gt=0)
