"""The `relay` engine: forwards tasks to any server that speaks this media API (the hosted
service of the seed, or another Darkroom) and keeps the finished image in Darkroom's own
storage, so links live as long as this server's retention says.

Catalog options: `base_url` (required), `api_key_env` (the variable holding the upstream key,
default DARKROOM_RELAY_API_KEY), `upstream_model` (default: the same id), `aspect_ratios`
(those the upstream model takes, when fewer than ours), the polling options of _poller.py
(`poll_seconds`, `poll_max_seconds`, `task_timeout_seconds`) and the common limits of
calls.py.

Each job: create the upstream task (with retries), wait for it (one poller serves every task
of the engine), download the result.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import structlog
from PIL import Image

from darkroom.engines.base import BatchMonitor, Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import CatalogError, ModelSpec
from darkroom.engines.upstream import _images
from darkroom.engines.upstream._poller import Poller, PollTiming
from darkroom.engines.upstream.calls import (
    Upstream,
    UpstreamFailure,
    connection_failure,
    each_job,
    http_failure,
    scrub,
)
from darkroom.engines.upstream.options import RelayOptions

log = structlog.get_logger("darkroom.engines.relay")
PROVIDER = "The upstream image service"
# Media API codes that may pass: internal error, overloaded.
_PASSING_CODES = {1, 6}
_OPERATOR_CODES = {2: "refused this server's key", 5: "has no balance left", 7: "refused the model"}


def open_engine(spec: ModelSpec, data_dir: Path) -> RelayEngine:
    return RelayEngine(spec)


class RelayEngine(Engine):
    def __init__(self, spec: ModelSpec) -> None:
        options = RelayOptions.of(spec)
        self.spec = spec
        self.base_url = options.base_url.rstrip("/")
        self.model = options.upstream_model or spec.id
        self.ratios = options.aspect_ratios
        self._key = os.environ.get(options.api_key_env, "")
        if not self._key:
            raise CatalogError(
                f'model "{spec.id}": set {options.api_key_env} to the upstream API key'
            )
        self.upstream = Upstream(PROVIDER, options)
        # No default headers: the key goes to the API only, never to the storage host that a
        # result link points at.
        self._http = httpx.AsyncClient(timeout=self.upstream.limits.timeout_seconds)
        self._poller = Poller(
            self._fetch,
            self._cancel,
            PollTiming.from_options(options),
            provider=PROVIDER,
            secrets=[self._key],
        )

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        batch_progress = {job.task_id: 0.0 for job in jobs}
        return await each_job(jobs, lambda job: self._relay(job, monitor, batch_progress))

    async def close(self) -> None:
        await self._poller.close()
        await self._http.aclose()

    # -- one job -------------------------------------------------------------------------

    async def _relay(
        self, job: Job, monitor: BatchMonitor, batch_progress: dict[str, float]
    ) -> Image.Image:
        upstream_id = await self.upstream.call(
            lambda: self._create(job), canceled=lambda: monitor.is_canceled(job.task_id)
        )
        log.info("relayed", task_id=job.task_id, upstream_id=upstream_id)
        url = await self._poller.wait(job, upstream_id, monitor, batch_progress)
        data = await self.upstream.call(lambda: self._download(url))
        return _images.fit(_images.decode(data, PROVIDER), job.width, job.height)

    async def _create(self, job: Job) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": job.prompt,
            "ar": _images.provider_ratio(self.spec, job.width, job.height, self.ratios),
            "seed": job.seed,  # Darkroom honours it; the hosted service ignores unknown fields
        }
        if job.negative_prompt:
            body["negative_prompt"] = job.negative_prompt
        if job.images:
            body["images"] = list(job.images)
        task = await self._api("/v1/media/create", body)
        if not isinstance(task.get("id"), str):
            raise UpstreamFailure(f"{PROVIDER} answered without a task id", retryable=True)
        return task["id"]

    async def _api(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs to the media API and returns its answer, or raises what went wrong."""
        try:
            response = await self._http.post(
                f"{self.base_url}{path}", json=body, headers={"Authorization": self._key}
            )
        except httpx.TransportError as exc:
            raise connection_failure(PROVIDER, exc) from None
        if response.status_code != 200:
            raise http_failure(PROVIDER, response.status_code, None, [self._key])
        try:
            answer = response.json()
        except ValueError:
            raise UpstreamFailure(f"{PROVIDER} answered with no JSON", retryable=True) from None
        code = answer.get("code", 0) if isinstance(answer, dict) else None
        if code != 0:
            raise self._api_failure(
                code, answer.get("message") if isinstance(answer, dict) else None
            )
        return answer

    def _api_failure(self, code: Any, message: Any) -> Exception:
        said = scrub(message, [self._key]) if isinstance(message, str) else "no reason given"
        if code in (1001, 1002):
            return GenerationError(f"{PROVIDER} refused the request: {said} (code {code}).")
        if code in _PASSING_CODES:
            return UpstreamFailure(
                f"{PROVIDER} is busy or failing (code {code}: {said})", retryable=True
            )
        if code in _OPERATOR_CODES:
            return UpstreamFailure(
                f"{PROVIDER} {_OPERATOR_CODES[code]} (code {code}); please tell the operator "
                "of this service",
                retryable=False,
            )
        return UpstreamFailure(
            f"{PROVIDER} refused the request (code {code}: {said})", retryable=False
        )

    async def _download(self, url: str) -> bytes:
        try:
            response = await self._http.get(url, follow_redirects=True)
        except httpx.TransportError as exc:
            raise connection_failure(PROVIDER, exc) from None
        if response.status_code != 200:
            raise http_failure(f"{PROVIDER}'s result link", response.status_code, None, [])
        return response.content

    async def _fetch(self, upstream_id: str) -> dict[str, Any]:
        """One poll, without retries: the poller spaces out a failed poll's next try."""
        return await self.upstream.once(
            lambda: self._api("/v1/media/result", {"task_id": upstream_id})
        )

    async def _cancel(self, upstream_id: str) -> None:
        await self.upstream.once(lambda: self._api("/v1/media/cancel", {"task_id": upstream_id}))
