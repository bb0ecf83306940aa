"""The tiny engine, a diffusers engine whose source is a folder it builds: it draws at a quarter
of the task's side and resizes, runs its default four steps on the CPU, reports progress and
answers a canceled task "canceled"."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
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
