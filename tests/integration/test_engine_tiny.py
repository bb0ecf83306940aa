"""The tiny engine, a diffusers engine whose source is a folder it builds: it draws at a quarter
of the task's side and resizes, runs its default four steps on the CPU, reports progress and
answers a canceled task "canceled"; a reference image changes what it draws."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from diffusers import StableDiffusionImg2ImgPipeline
from PIL import Image

from darkroom.engines import BatchMonitor, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.local.pipeline import DiffusersEngine
from darkroom.errors import CANCELED_MESSAGE, TaskCanceled


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Any:
    spec = Catalog.from_dict({"tiny-512": {"engine": "tiny", "native_size": 512}})["tiny-512"]
    engine = load_engine(spec, tmp_path_factory.mktemp("data"))
    asyncio.run(engine.load())
    return engine


def job(task: str, size: tuple[int, int] = (512, 512), seed: int = 5) -> Job:
    return Job(task_id=task * 24, prompt="a kite", width=size[0], height=size[1], seed=seed)


def test_it_is_a_diffusers_engine_on_the_folder_it_built(engine):
    assert isinstance(engine, DiffusersEngine)
    folder = Path(engine.source)
    assert folder.name == "tiny-sd" and (folder / "model_index.json").exists()
    assert "Random weights" in json.loads((folder / "DEMO.json").read_text())["note"]
    assert (engine.device, engine.steps, engine.guidance) == ("cpu", 4, 5.0)
    assert engine.holds_weights and engine.memory_bytes() > 0


def test_it_draws_at_a_quarter_of_the_side_and_resizes(engine):
    drawn: list[tuple[int, int]] = []
    pipeline = engine._pipeline

    def recording(**arguments: Any) -> Any:
        drawn.append((arguments["width"], arguments["height"]))
        return pipeline(**arguments)

    engine._pipeline = recording
    try:
        [image] = asyncio.run(engine.generate([job("a", (704, 384))], BatchMonitor()))
    finally:
        engine._pipeline = pipeline
    assert drawn == [(176, 96)]
    assert isinstance(image, Image.Image) and image.size == (704, 384)


def test_progress_follows_its_four_default_steps(engine):
    seen: list[float] = []

    class Recording(BatchMonitor):
        def report(self, fraction: float) -> None:
            seen.append(fraction)
            super().report(fraction)

    asyncio.run(engine.generate([job("a")], Recording()))
    assert seen == [0.25, 0.5, 0.75, 1.0]


def test_a_canceled_task_is_answered_canceled(engine):
    monitor = BatchMonitor(canceled={"b" * 24})
    kept, canceled = asyncio.run(engine.generate([job("a"), job("b")], monitor))
    assert isinstance(kept, Image.Image)
    assert isinstance(canceled, TaskCanceled) and str(canceled) == CANCELED_MESSAGE


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).mean())


def test_a_reference_image_measurably_changes_what_it_draws(engine):
    red = Image.new("RGB", (512, 512), (220, 30, 30))
    blue = Image.new("RGB", (300, 300), (20, 40, 230))  # another shape: resized to the task's
    plain, on_red, on_blue = asyncio.run(
        engine.generate(
            [job("a"), replace(job("b"), images=(red,)), replace(job("c"), images=(blue,))],
            BatchMonitor(),
        )
    )
    assert on_red.size == on_blue.size == (512, 512)
    # Same seed and prompt: about 58 and 68 levels of 255 apart (1 without show_reference).
    assert mean_difference(plain, on_red) > 20
    assert mean_difference(on_red, on_blue) > 20
    red_channel = np.asarray(on_red, np.float64).mean(axis=(0, 1))
    assert red_channel[0] > red_channel[2]  # the edit of a red picture is redder than blue


def test_without_show_reference_the_pipeline_s_image_to_image_alone_still_differs(tmp_path):
    spec = Catalog.from_dict(
        {"t": {"engine": "tiny", "native_size": 512, "max_images": 1, "show_reference": 0}}
    )["t"]
    plain_engine = load_engine(spec, tmp_path)
    red = Image.new("RGB", (512, 512), (220, 30, 30))
    plain, on_red = asyncio.run(
        plain_engine.generate([job("a"), replace(job("b"), images=(red,))], BatchMonitor())
    )
    assert isinstance(plain_engine._image_to_image, StableDiffusionImg2ImgPipeline)
    assert plain_engine._image_to_image.unet is plain_engine._pipeline.unet  # weights shared
    assert mean_difference(plain, on_red) > 20
