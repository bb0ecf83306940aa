"""The `openai` engine: OpenAI's image models (gpt-image-1 and its successors) through the
`openai` SDK, `POST /v1/images/generations`; a task with reference images is an edit,
`POST /v1/images/edits`, the images sent as PNG files of a multipart form (up to 16 for
gpt-image models, one for dall-e-2).

Catalog options: `upstream_model` (default gpt-image-1), `api_key_env` (default
OPENAI_API_KEY), `base_url` (a proxy, Azure-compatible gateway, or a test server), `sizes`
(the sizes the model draws, default gpt-image-1's), `quality`, `moderation`, and the common
limits of calls.py. The SDK's own retries are off: Upstream.call owns them.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

from PIL import Image

from darkroom.engines.base import BatchMonitor, Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import CatalogError, ModelSpec
from darkroom.engines.upstream import _images
from darkroom.engines.upstream.calls import (
    Upstream,
    connection_failure,
    each_job,
    http_failure,
    prompt_blocked,
)
from darkroom.engines.upstream.options import OpenAIOptions

PROVIDER = "OpenAI"
# The error codes OpenAI answers a refused prompt with (HTTP 400).
MODERATION_CODES = {"moderation_blocked", "content_policy_violation"}


def open_engine(spec: ModelSpec, data_dir: Path) -> OpenAIEngine:
    return OpenAIEngine(spec)


class OpenAIEngine(Engine):
    def __init__(self, spec: ModelSpec) -> None:
        import openai

        options = OpenAIOptions.of(spec)
        self.spec = spec
        self.model = options.upstream_model
        self.sizes = options.sizes
        passed = {"quality": options.quality, "moderation": options.moderation}
        self.extra = {k: v for k, v in passed.items() if v is not None}
        if self.model.startswith("dall-e"):
            self.extra["response_format"] = "b64_json"  # gpt-image models always send base64
        # The edit endpoint has no moderation setting: it moderates as it always does.
        self.edit_extra = {k: v for k, v in self.extra.items() if k != "moderation"}
        self._key = os.environ.get(options.api_key_env, "")
        if not self._key:
            raise CatalogError(f'model "{spec.id}": set {options.api_key_env} to an OpenAI API key')
        self.upstream = Upstream(PROVIDER, options)
        self._client = openai.AsyncOpenAI(
            api_key=self._key,
            base_url=options.base_url,
            organization=options.organization,
            timeout=self.upstream.limits.timeout_seconds,
            max_retries=0,
        )

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        return await each_job(jobs, lambda job: self._generate_one(job, monitor))

    async def close(self) -> None:
        await self._client.close()

    async def _generate_one(self, job: Job, monitor: BatchMonitor) -> Image.Image:
        size = self._size_for(job.width, job.height)
        encoded = await _images.pngs(job.images)
        files = [(f"image-{index}.png", data, "image/png") for index, data in enumerate(encoded)]
        response = await self.upstream.call(
            lambda: self._request(job.prompt, size, files),
            canceled=lambda: monitor.is_canceled(job.task_id),
        )
        data = response.data or []
        encoded = data[0].b64_json if data else None
        if not encoded:
            raise GenerationError(f"{PROVIDER} returned no image; please try again.")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise GenerationError(f"{PROVIDER} returned an image that cannot be read.") from exc
        return await _images.picture(raw, PROVIDER, job.width, job.height)

    def _size_for(self, width: int, height: int) -> str:
        ratios = {f"{w}:{h}": size for size in self.sizes for w, h in [size.split("x")]}
        return ratios[_images.provider_ratio(self.spec, width, height, ratios)]

    async def _request(self, prompt: str, size: str, files: list[tuple[str, bytes, str]]) -> Any:
        """A generation, or with files an edit of them."""
        import openai

        images = self._client.images
        try:
            if files:
                return await images.edit(
                    model=self.model, image=files, prompt=prompt, size=size, n=1, **self.edit_extra
                )
            return await images.generate(
                model=self.model, prompt=prompt, size=size, n=1, **self.extra
            )
        except openai.APIStatusError as exc:
            raise self._failure(exc) from None
        except openai.APIConnectionError as exc:  # timeouts included
            raise connection_failure(PROVIDER, exc) from None

    def _failure(self, exc: Any) -> Exception:
        error = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else {}
        error = error if isinstance(error, dict) else {}
        code = exc.code or error.get("code")
        if exc.status_code == 400 and code in MODERATION_CODES:
            return prompt_blocked(PROVIDER, "the request was rejected by its safety system")
        detail = error.get("message") if isinstance(error.get("message"), str) else None
        return http_failure(PROVIDER, exc.status_code, detail, [self._key])
