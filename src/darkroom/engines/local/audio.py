"""The `musicgen` engine: Meta's MusicGen text-to-music models through transformers, from a hub
id or a folder, kept loaded for the worker process's life (`kind = "audio"`).

    [models."musicgen"]
    engine = "musicgen"
    source = "facebook/musicgen-small"
    seconds = 8          # each track's length (at most 30)
    tracks = 2           # tracks per task, each its own draw
    guidance = 3.0

Each task is one `generate` call for its tracks (the prompt once per track), seeded with the
task's seed, so a retried task makes the same tracks. Decoding is token by token (50 a second
of audio): a logits processor reports progress per token, and a stopping criterion ends the
call once its task is canceled (by raising out of it: MusicGen's delay pattern cannot end
early). The waveforms are encoded as MP3 in the engine's thread; the
worker stores each track as its own file, with its duration read from it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import structlog

from darkroom.engines.base import BatchMonitor, Engine, Job, Outcome
from darkroom.engines.catalog import CatalogError, ModelSpec
from darkroom.engines.encoding import encode_mp3
from darkroom.engines.local.options import MusicgenOptions
from darkroom.engines.local.pipeline import _device, _resolve_source
from darkroom.engines.local.steps import release_cached_memory
from darkroom.engines.media import Track, Tracks
from darkroom.errors import TaskCanceled

log = structlog.get_logger("darkroom.engines")
TITLE_CHARACTERS = 80


def open_engine(spec: ModelSpec, data_dir: Path) -> MusicgenEngine:
    if spec.kind != "audio":
        raise CatalogError(
            f'model "{spec.id}": the musicgen engine makes audio; set kind = "audio"'
        )
    options = MusicgenOptions.of(spec)
    return MusicgenEngine(spec, options, _resolve_source(options.source, data_dir))


class MusicgenEngine(Engine):
    holds_weights = True

    def __init__(self, spec: ModelSpec, options: MusicgenOptions, source: str) -> None:
        self.spec = spec
        self.options = options
        self.source = source
        self._device: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = _device(self.options.device)
        return self._device

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                from transformers import AutoTokenizer, MusicgenForConditionalGeneration

                self._tokenizer = AutoTokenizer.from_pretrained(self.source)
                model = MusicgenForConditionalGeneration.from_pretrained(self.source)
                self._model = model.to(self.device).eval()
                log.info("model loaded", model=self.spec.id, source=self.source, device=self.device)
            return self._model

    def memory_bytes(self) -> int:
        """What the loaded model's parameters and buffers hold (0 before it loads)."""
        if self._model is None:
            return 0
        tensors = (*self._model.parameters(), *self._model.buffers())
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    async def close(self) -> None:
        with self._lock:
            self._model = self._tokenizer = None
        release_cached_memory()

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        return await asyncio.to_thread(self._generate, jobs, monitor)

    def _generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        import torch

        model = self._load()
        outcomes: list[Outcome] = []
        with self._lock, torch.inference_mode():
            for index, job in enumerate(jobs):
                progress = _Progress(monitor, job.task_id, index / len(jobs), 1 / len(jobs))
                outcomes.append(self._tracks(model, job, progress))
        return outcomes

    def _tracks(self, model: Any, job: Job, progress: _Progress) -> Outcome:
        import torch
        from transformers import LogitsProcessorList

        if progress.canceled():
            return TaskCanceled()
        frame_rate = model.config.audio_encoder.frame_rate
        tokens = max(1, round(self.options.seconds * frame_rate))
        progress.tokens = tokens
        inputs = self._tokenizer(
            [job.prompt] * self.options.tracks, return_tensors="pt", padding=True
        )
        torch.manual_seed(job.seed)  # generate samples from the global generator
        try:
            audio = model.generate(
                **inputs.to(self.device),
                do_sample=True,
                guidance_scale=self.options.guidance,
                max_new_tokens=tokens,
                logits_processor=LogitsProcessorList([progress]),
            )
        except _Stopped:
            log.info("task interrupted", task_id=job.task_id, tokens=progress.done, of=tokens)
            return TaskCanceled()
        rate = model.config.audio_encoder.sampling_rate
        title = " ".join(job.prompt.split())[:TITLE_CHARACTERS]
        return Tracks(
            tuple(
                Track(
                    encode_mp3(waveform.float().cpu().numpy(), rate), _title(title, n, len(audio))
                )
                for n, waveform in enumerate(audio)
            )
        )


def _title(prompt: str, index: int, count: int) -> str:
    return prompt if count == 1 else f"{prompt} ({index + 1})"


class _Stopped(Exception):
    """Raised out of `generate` at the next token once the task is canceled."""


class _Progress:
    """Called once per decoded token (as a logits processor, leaving the scores as they are):
    reports the task's share of the batch's progress, and stops the call once it is canceled."""

    def __init__(self, monitor: BatchMonitor, task_id: str, start: float, span: float) -> None:
        self.monitor = monitor
        self.task_id = task_id
        self.start = start
        self.span = span
        self.tokens = 1
        self.done = 0

    def canceled(self) -> bool:
        return self.monitor.is_canceled(self.task_id)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.done += 1
        self.monitor.report(self.start + self.span * min(self.done / self.tokens, 1.0))
        if self.canceled():
            raise _Stopped()
        return scores
