"""The `google` engine: Google's image models through the `google-genai` SDK.

Two backends:
- Vertex AI (`project`, `location`; credentials from `credentials_file`, a service-account
  JSON, or else application-default credentials): Imagen models (`imagen-3.0-generate-002`,
  `imagen-4.0-*`) through `:predict`, Gemini image models through `:generateContent`.
- The Gemini API (an API key from `api_key_env`, GEMINI_API_KEY or GOOGLE_API_KEY): the Gemini
  image models. Imagen is offered there no longer, and the SDK refuses it, so a catalog entry
  asking for it is refused at start.

Ratios a model lacks (21:9 and 9:21 for Imagen) are drawn at the nearest ratio it has and
center-cropped to the task's size. Gemini image models take a task's reference images as inline
PNG parts of the request, before its prompt; Imagen takes none (its entries' `max_images` is 0,
and an entry that sets more is refused at start). Safety blocks fail the task with code 1002
(the prompt) or 1001 (the image) in the message.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Awaitable
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
    image_blocked,
    prompt_blocked,
)
from darkroom.engines.upstream.options import GoogleOptions

PROVIDER = "Google"
DEFAULT_LOCATION = "us-central1"
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
GEMINI_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
API_KEY_ENVS = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
# Words of Vertex AI's HTTP 400 answer to a prompt its Responsible AI filter refuses.
_PROMPT_REFUSALS = ("responsible ai", "sensitive words", "violate", "safety")
_IMAGE_FINISHES = {"IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "SAFETY", "PROHIBITED_CONTENT"}
# The SDK warns on every Imagen call that Imagen is deprecated; once in the docs is enough.
warnings.filterwarnings("ignore", message="The generate_images method is deprecated")


def open_engine(spec: ModelSpec, data_dir: Path) -> GoogleEngine:
    if spec.kind == "video":  # Veo: long-running operations (google_videos.py)
        from darkroom.engines.upstream.google_videos import VeoEngine

        return VeoEngine(spec)
    return GoogleEngine(spec)


class GoogleEngine(Engine):
    def __init__(self, spec: ModelSpec) -> None:
        options = GoogleOptions.of(spec)
        self.spec = spec
        self.model = options.upstream_model
        self.imagen = self.model.startswith("imagen")
        self.ratios = options.aspect_ratios or (IMAGEN_RATIOS if self.imagen else GEMINI_RATIOS)
        if self.imagen and spec.max_images:
            raise CatalogError(
                f'model "{spec.id}": {self.model} takes no reference images; set max_images = 0'
            )
        self.upstream = Upstream(PROVIDER, options)
        self._secrets: list[str] = []
        self._client = self._connect(options)

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        return await each_job(jobs, lambda job: self._generate_one(job, monitor))

    async def close(self) -> None:
        await self._client.aio.aclose()

    # -- connection ----------------------------------------------------------------------

    def _connect(self, options: GoogleOptions) -> Any:
        from google import genai
        from google.genai import types

        http_options = types.HttpOptions(
            base_url=options.base_url,
            timeout=int(self.upstream.limits.timeout_seconds * 1000),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),  # Upstream.call retries
        )
        if self._uses_vertex(options):
            project = options.project or os.environ.get("GOOGLE_CLOUD_PROJECT")
            if not project:
                raise CatalogError(
                    f'model "{self.spec.id}": Vertex AI needs project (or GOOGLE_CLOUD_PROJECT)'
                )
            return genai.Client(
                vertexai=True,
                project=project,
                location=options.location
                or os.environ.get("GOOGLE_CLOUD_LOCATION", DEFAULT_LOCATION),
                credentials=_service_account(options.credentials_file),
                http_options=http_options,
            )
        key = _api_key(options)
        if not key:
            raise CatalogError(
                f'model "{self.spec.id}": set GOOGLE_CLOUD_PROJECT (Vertex AI) or '
                f"{' or '.join(API_KEY_ENVS)} (Gemini API)"
            )
        if self.imagen:
            raise CatalogError(
                f'model "{self.spec.id}": {self.model} is served on Vertex AI only; '
                "set project (or GOOGLE_CLOUD_PROJECT) and credentials"
            )
        self._secrets.append(key)
        return genai.Client(api_key=key, http_options=http_options)

    @staticmethod
    def _uses_vertex(options: GoogleOptions) -> bool:
        if options.backend is not None:
            return options.backend == "vertex"
        return bool(options.project or os.environ.get("GOOGLE_CLOUD_PROJECT"))

    # -- generation ----------------------------------------------------------------------

    async def _generate_one(self, job: Job, monitor: BatchMonitor) -> Image.Image:
        ratio = _images.provider_ratio(self.spec, job.width, job.height, self.ratios)
        references = await _images.pngs(job.images)  # none for Imagen: its entries take none
        data = await self.upstream.call(
            lambda: self._guarded(self._draw(job.prompt, ratio, references)),
            canceled=lambda: monitor.is_canceled(job.task_id),
        )
        return await _images.picture(data, PROVIDER, job.width, job.height)

    def _draw(self, prompt: str, ratio: str, references: list[bytes]) -> Awaitable[bytes]:
        if self.imagen:
            return self._imagen(prompt, ratio)
        return self._gemini(prompt, ratio, references)

    async def _guarded(self, call: Any) -> bytes:
        """Awaits an SDK call, translating its exceptions."""
        from google.auth import exceptions as auth_errors
        from google.genai import errors

        try:
            return await call
        except errors.APIError as exc:
            raise self._failure(exc) from None
        except auth_errors.TransportError as exc:
            raise connection_failure(f"{PROVIDER} sign-in", exc) from None
        except auth_errors.RefreshError:
            raise http_failure(PROVIDER, 401, None, self._secrets) from None
        except Exception as exc:
            if _is_connection_error(exc):
                raise connection_failure(PROVIDER, exc) from None
            raise

    async def _imagen(self, prompt: str, ratio: str) -> bytes:
        from google.genai import types

        response = await self._client.aio.models.generate_images(
            model=self.model,
            prompt=prompt,
            config=types.GenerateImagesConfig(
                number_of_images=1,
                aspect_ratio=ratio,
                include_rai_reason=True,
                output_mime_type="image/png",
            ),
        )
        generated = response.generated_images or []
        for item in generated:
            if item.image is not None and item.image.image_bytes:
                return item.image.image_bytes
        reasons = [item.rai_filtered_reason for item in generated if item.rai_filtered_reason]
        # Vertex answers a filtered result with no image and, asked for it, the filter's reason.
        raise image_blocked(PROVIDER, reasons[0] if reasons else None)

    async def _gemini(self, prompt: str, ratio: str, references: list[bytes]) -> bytes:
        from google.genai import types

        images = [types.Part.from_bytes(data=png, mime_type="image/png") for png in references]
        text = types.Part.from_text(text=prompt)
        response = await self._client.aio.models.generate_content(
            model=self.model,
            contents=[types.Content(role="user", parts=[*images, text])],
            config=types.GenerateContentConfig(
                response_modalities=["IMAGE"],
                image_config=types.ImageConfig(aspect_ratio=ratio),
            ),
        )
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            raise prompt_blocked(PROVIDER, _enum_name(feedback.block_reason))
        for candidate in response.candidates or []:
            for part in (
                candidate.content.parts if candidate.content and candidate.content.parts else []
            ):
                if part.inline_data is not None and part.inline_data.data:
                    return part.inline_data.data
        finishes = {_enum_name(c.finish_reason) for c in response.candidates or []}
        if finishes & _IMAGE_FINISHES:
            raise image_blocked(PROVIDER, ", ".join(sorted(finishes & _IMAGE_FINISHES)))
        raise GenerationError(
            f"{PROVIDER} answered without an image; describe the picture plainly and try again."
        )

    def _failure(self, exc: Any) -> Exception:
        message = exc.message if isinstance(exc.message, str) else ""
        if exc.code == 400 and any(word in message.lower() for word in _PROMPT_REFUSALS):
            return prompt_blocked(PROVIDER, "Responsible AI practices")
        if exc.code == 404:
            return GenerationError(
                f"{PROVIDER} does not offer the model {self.model} to this server "
                "(HTTP 404); please tell the operator of this service."
            )
        return http_failure(PROVIDER, exc.code or 500, message, self._secrets)


def _service_account(path: str | None) -> Any:
    """Credentials from a service-account file; None leaves the SDK to application-default
    credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server)."""
    if not path:
        return None
    from google.oauth2 import service_account

    try:
        return service_account.Credentials.from_service_account_file(path, scopes=SCOPES)
    except (OSError, ValueError) as exc:
        raise CatalogError(f"cannot read the service-account file {path}: {exc}") from exc


def _api_key(options: GoogleOptions) -> str:
    names = [options.api_key_env] if options.api_key_env is not None else list(API_KEY_ENVS)
    return next((os.environ[name] for name in names if os.environ.get(name)), "")


def _enum_name(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _is_connection_error(exc: Exception) -> bool:
    # The SDK speaks through httpx or, in recent versions, its successor httpx2: both raise a
    # TransportError subclass for a refused connection, a reset or a timeout.
    return any(
        cls.__name__ == "TransportError" and cls.__module__.split(".")[0] in ("httpx", "httpx2")
        for cls in type(exc).__mro__
    )
