"""Veo through the `google` engine (`kind = "video"`, `upstream_model = "veo-3.0-generate-001"`,
`"veo-3.1-fast-generate-preview"`, ...): Google's video models as long-running operations of
the google-genai SDK, on Vertex AI (`project`, credentials as for Imagen: google_images.py).
The google-genai versions this was built against refuse Veo on the Gemini API, so the Gemini
API path (a clip downloaded with `files.download`) is kept but untested.

Each job: `generate_videos` starts an operation (with retries); one poller for every task of
the engine (_poller.py, the relay's) reads the operations with `operations.get`, first
`poll_seconds` after the start, 1.5 times longer each time up to `poll_max_seconds`, failed
reads tried again with backoff, until `task_timeout_seconds`; a canceled task stops being
polled at once (Google offers no cancel of a Veo operation, so the operation runs out). A done
operation's clip is read from the answer (`video_bytes`, Vertex AI) or downloaded through the
SDK (`files.download`, the Gemini API), checked with PyAV and stored by the worker as MP4.
A filtered clip fails the task with code 1001 in its message; a prompt Google refuses, 1002.
A task's reference image goes as the clip's first frame (Veo takes one).

Vertex AI caps the Veo operations a project runs at once, so `max_in_flight` (default 2) is
the number of operations outstanding, started and not done (calls.py, `job_slot`): a task
beyond it waits for a place, its lease kept by the worker's heartbeat, and starts as one frees.
`task_timeout_seconds` counts from the operation's start, not from the wait. A task canceled
once its operation started gives its place up at once, though Google's operation runs out.
"""

from __future__ import annotations

import asyncio
from typing import Any

from darkroom.client.models import Task
from darkroom.engines.base import BatchMonitor, GenerationError, Job, Outcome
from darkroom.engines.catalog import CatalogError, ModelSpec
from darkroom.engines.encoding import duration_of
from darkroom.engines.media import EncodedVideo
from darkroom.engines.upstream import _images
from darkroom.engines.upstream._poller import Poller, PollTiming
from darkroom.engines.upstream.calls import Upstream, each_job, image_blocked, prompt_blocked
from darkroom.engines.upstream.google_images import PROVIDER, GoogleEngine
from darkroom.engines.upstream.options import GoogleOptions

VEO_RATIOS = ("16:9", "9:16")
_PROMPT_WORDS = ("prompt", "usage guidelines", "responsible ai", "sensitive words")


class VeoEngine(GoogleEngine):
    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        options = GoogleOptions.of(spec)
        if not self.model.startswith("veo"):
            raise CatalogError(
                f'model "{spec.id}": a video entry of the google engine names a Veo model '
                f'(upstream_model = "veo-3.0-generate-001", ...); got {self.model!r}'
            )
        self.ratios = options.aspect_ratios or VEO_RATIOS
        self.upstream = Upstream(PROVIDER, options, kind="video")
        self._operations: dict[str, Any] = {}  # by name: the SDK's operation, last read
        self._poller = Poller(
            self._read,
            self._no_cancel,
            PollTiming.from_options(options),
            provider=PROVIDER,
            secrets=self._secrets,
            what="video",
        )

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        batch_progress = {job.task_id: 0.0 for job in jobs}
        return await each_job(jobs, lambda job: self._clip(job, monitor, batch_progress))

    async def close(self) -> None:
        await self._poller.close()
        await super().close()

    # -- one job -------------------------------------------------------------------------

    async def _clip(
        self, job: Job, monitor: BatchMonitor, batch_progress: dict[str, float]
    ) -> EncodedVideo:
        ratio = _images.provider_ratio(self.spec, job.width, job.height, self.ratios)
        first_frames = await _images.pngs(job.images[:1])

        def canceled() -> bool:
            return monitor.is_canceled(job.task_id)

        async with self.upstream.job_slot(canceled):
            operation = await self.upstream.call(
                lambda: self._guarded(self._start(job, ratio, first_frames)), canceled=canceled
            )
            self._operations[operation.name] = operation
            try:
                await self._poller.wait(job, operation.name, monitor, batch_progress)
                video = _video(self._operations[operation.name])
            finally:
                del self._operations[operation.name]
        data = video.video_bytes or await self.upstream.call(
            lambda: self._guarded(self._client.aio.files.download(file=video))
        )
        if await asyncio.to_thread(duration_of, data) is None:
            raise GenerationError(f"{PROVIDER} answered with a video that cannot be read.")
        return EncodedVideo(data)

    def _start(self, job: Job, ratio: str, first_frames: list[bytes]) -> Any:
        from google.genai import types

        image = (
            types.Image(image_bytes=first_frames[0], mime_type="image/png")
            if first_frames
            else None
        )
        return self._client.aio.models.generate_videos(
            model=self.model,
            source=types.GenerateVideosSource(prompt=job.prompt, image=image),
            config=types.GenerateVideosConfig(
                aspect_ratio=ratio,
                number_of_videos=1,
                negative_prompt=job.negative_prompt or None,
            ),
        )

    async def _read(self, name: str) -> Task:
        """One read of the operation, as the poller's task: done once it has a clip; a
        failed or filtered operation raises its GenerationError."""
        last = self._operations.get(name)
        if last is None:  # its task ended (canceled, timed out) while this read was due
            return Task(id=name, model=self.model, prompt="", created_at=0, status="processing")
        operation = await self.upstream.once(
            lambda: self._guarded(self._client.aio.operations.get(last))
        )
        if name in self._operations:
            self._operations[name] = operation
        if not operation.done:
            return Task(id=name, model=self.model, prompt="", created_at=0, status="processing")
        _video(operation)  # raises for a failed or filtered operation
        return Task(id=name, model=self.model, prompt="", created_at=0, status="done", url=name)

    async def _no_cancel(self, name: str) -> None:
        """Google has no cancel for a Veo operation: it runs out, unread."""


def _video(operation: Any) -> Any:
    """The done operation's clip; or the GenerationError of a failed or filtered one."""
    error = operation.error
    if error:
        message = str(error.get("message") or error) if isinstance(error, dict) else str(error)
        if any(word in message.lower() for word in _PROMPT_WORDS):
            raise prompt_blocked(PROVIDER, message)
        raise GenerationError(f"{PROVIDER} could not make the video: {message}")
    response = operation.response or operation.result
    videos = (
        [item.video for item in (response.generated_videos or []) if item.video] if response else []
    )
    if videos:
        return videos[0]
    reasons = (response.rai_media_filtered_reasons or []) if response else []
    if reasons and any(word in reasons[0].lower() for word in _PROMPT_WORDS):
        raise prompt_blocked(PROVIDER, reasons[0])
    raise image_blocked(PROVIDER, reasons[0] if reasons else None)
