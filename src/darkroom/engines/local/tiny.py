"""The `tiny` engine: a real diffusers StableDiffusionPipeline with random weights, small enough
to run on a CPU in a fraction of a second. It exercises the path a hub model takes (built once,
`save_pretrained` to a folder, `from_pretrained` back) so the service can be run and tested
anywhere; its images are noise-like, and it says so in the demo catalog.

It denoises at a quarter of the output's side and resizes to the requested size, since its
output carries no detail worth the extra time. Like the diffusers engine, it reports progress
and stops at the next denoising step once its whole batch is canceled (see steps.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

from PIL import Image

from darkroom.engines.base import BatchMonitor, Engine, Job, Outcome
from darkroom.engines.catalog import ModelSpec
from darkroom.engines.local.memory import folder_weight_bytes, pipeline_bytes
from darkroom.engines.local.options import TinyOptions
from darkroom.engines.local.random_weights import build
from darkroom.engines.local.steps import StepCallback, release_cached_memory, run_jobs


def open_engine(spec: ModelSpec, data_dir: Path) -> TinyEngine:
    return TinyEngine(spec, data_dir / "models")


class TinyEngine(Engine):
    holds_weights = True

    def __init__(self, spec: ModelSpec, models_dir: Path) -> None:
        options = TinyOptions.of(spec)
        self.spec = spec
        self.folder = Path(options.folder or models_dir / "tiny-sd")
        self.steps = options.steps
        self.guidance = options.guidance
        self.scale = options.scale
        self._pipeline: Any = None
        self._lock = threading.Lock()

    async def load(self) -> None:
        await asyncio.to_thread(self._load)

    async def generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        return await asyncio.to_thread(self._generate, jobs, monitor)

    def memory_bytes(self) -> int:
        """What the loaded pipeline holds; before loading, what its weights take on disk."""
        if self._pipeline is not None:
            return pipeline_bytes(self._pipeline)
        return folder_weight_bytes(self.folder)

    async def close(self) -> None:
        with self._lock:
            self._pipeline = None
        release_cached_memory()

    def _generate(self, jobs: list[Job], monitor: BatchMonitor) -> list[Outcome]:
        import torch

        pipeline = self._load()
        with self._lock, torch.inference_mode():
            return run_jobs(
                lambda part, callback: self._call(pipeline, part, callback), jobs, monitor
            )

    def _call(self, pipeline: Any, jobs: list[Job], callback: StepCallback) -> list[Image.Image]:
        import torch

        width, height = jobs[0].width, jobs[0].height
        result = pipeline(
            prompt=[job.prompt for job in jobs],
            negative_prompt=[job.negative_prompt or "" for job in jobs],
            width=_generation_side(width, self.scale),
            height=_generation_side(height, self.scale),
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=[torch.Generator().manual_seed(job.seed) for job in jobs],
            callback_on_step_end=callback,
        )
        return [image.resize((width, height), Image.Resampling.BICUBIC) for image in result.images]

    def _load(self) -> Any:
        with self._lock:
            if self._pipeline is None:
                from diffusers import AutoPipelineForText2Image

                if not (self.folder / "model_index.json").exists():
                    build_tiny_pipeline(self.folder)
                pipeline = AutoPipelineForText2Image.from_pretrained(self.folder)
                pipeline.set_progress_bar_config(disable=True)
                self._pipeline = pipeline
            return self._pipeline


def _generation_side(side: int, scale: int) -> int:
    return max(64, side // scale // 8 * 8)


def build_tiny_pipeline(folder: Path) -> None:
    """Builds the tiny SD 1.5 pipeline (random_weights.py: small configurations, a fixed seed)
    and saves it to `folder`, marked as random weights. Processes starting at once agree."""
    build("sd15", folder)
    note = folder / "DEMO.json"
    if not note.exists():
        note.write_text(
            json.dumps({"note": "Random weights built by Darkroom for demos and tests."})
        )
