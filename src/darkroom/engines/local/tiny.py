"""The `tiny` engine: the diffusers engine on a real StableDiffusionPipeline with random weights,
small enough to run on a CPU in a fraction of a second. Its source is a folder it builds itself
(random_weights.py, `save_pretrained`) and then loads like any hub model (`from_pretrained`), so
the service can be run and tested anywhere; its images are noise-like, and it says so in the
demo catalog.

It differs from the diffusers engine in three settings only: it runs on the CPU in float32, its
steps and guidance default to 4 and 5, and it denoises at a quarter of the output's side and
resizes to the requested size, since its output carries no detail worth the extra time. Progress
and cancellation at the next denoising step are the diffusers engine's (see steps.py).

A task with a reference image runs image-to-image like the diffusers engine's. Random weights
carry little of a reference through (a red and a blue reference differ by about 1 level of 255
in the result), so for the demo to show what an edit does, the result is blended with the
reference (`show_reference`, default 0.5; 0 leaves the pipeline's image as drawn).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from darkroom.engines.base import Job
from darkroom.engines.catalog import ModelSpec
from darkroom.engines.local.families import Family
from darkroom.engines.local.options import DiffusersOptions, TinyOptions
from darkroom.engines.local.pipeline import DiffusersEngine
from darkroom.engines.local.random_weights import build


def open_engine(spec: ModelSpec, data_dir: Path) -> TinyEngine:
    return TinyEngine(spec, TinyOptions.of(spec), data_dir / "models")


class TinyEngine(DiffusersEngine):
    def __init__(self, spec: ModelSpec, options: TinyOptions, models_dir: Path) -> None:
        self.folder = Path(options.folder or models_dir / "tiny-sd")
        self.scale = options.scale
        self.show_reference = options.show_reference
        pipeline = DiffusersOptions(
            source=str(self.folder),
            steps=options.steps,
            guidance=options.guidance,
            dtype="float32",
            device="cpu",
            strength=options.strength,
        )
        super().__init__(spec, pipeline, str(self.folder))

    def _from_pretrained(self) -> Any:
        if not (self.folder / "model_index.json").exists():
            build_tiny_pipeline(self.folder)
        return super()._from_pretrained()

    def _check_native_size(self, family: Family) -> None:
        """Any native size suits it: it draws at a fraction of the size and resizes."""

    def _drawn_size(self, width: int, height: int) -> tuple[int, int]:
        return _drawn_side(width, self.scale), _drawn_side(height, self.scale)

    def _result(self, image: Image.Image, job: Job) -> Image.Image:
        if not job.images or not self.show_reference:
            return image
        reference = job.images[0].convert("RGB").resize(image.size, Image.Resampling.BICUBIC)
        return Image.blend(image.convert("RGB"), reference, self.show_reference)


def _drawn_side(side: int, scale: int) -> int:
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
