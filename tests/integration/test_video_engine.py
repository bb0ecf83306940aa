"""The diffusers engine on tiny random-weight text-to-video pipelines (LTX-Video's LTXPipeline,
Wan's WanPipeline), built here and loaded back from their folders: the family read from
model_index.json, a clip of the entry's frames at the task's size, progress per step, cancel
between steps, and an entry whose kind does not match its pipeline refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from darkroom.engines import BatchMonitor, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.local.random_video import VIDEO_FAMILIES, build_video
from darkroom.engines.media import Clip
from darkroom.errors import ConfigurationError, TaskCanceled

NATIVE = 128  # 1:1 is 128 x 128, 16:9 is 192 x 128
FRAMES, FPS = 9, 8


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-video")


def _engine(folder: Path, **entry: Any) -> Any:
    entry = {"engine": "diffusers", "source": str(folder), "native_size": NATIVE, **entry}
    return load_engine(Catalog.from_dict({"m": entry})["m"], folder.parent)


@pytest.fixture(scope="module", params=VIDEO_FAMILIES)
def video_engine(request: pytest.FixtureRequest, models_root: Path) -> Any:
    folder = build_video(request.param, models_root / request.param)
    engine = _engine(folder, kind="video", frames=FRAMES, fps=FPS, steps=3, guidance=3.0)
    asyncio.run(engine.load())
    return engine


def job(task: str, size: tuple[int, int] = (NATIVE, NATIVE), seed: int = 7) -> Job:
    return Job(task_id=task * 24, prompt="a fox runs", width=size[0], height=size[1], seed=seed)


def test_each_video_family_is_read_from_its_folder(video_engine: Any) -> None:
    expected = {"ltx": "LTXPipeline", "wan": "WanPipeline"}[video_engine.family.name]
    assert type(video_engine._pipeline).__name__ == expected
    assert video_engine.spec.max_batch == 1


def test_each_video_family_makes_a_clip_of_the_entrys_frames_at_the_task_size(video_engine):
    wide = video_engine.spec.size_for("16:9")
    monitor = BatchMonitor()
    [clip] = asyncio.run(video_engine.generate([job("a", wide)], monitor))
    assert isinstance(clip, Clip)
    assert (len(clip.frames), clip.fps) == (FRAMES, FPS)
    assert {frame.size for frame in clip.frames} == {wide}
    assert monitor.progress == 1.0


def test_a_canceled_clip_stops_at_its_next_step(video_engine: Any) -> None:
    monitor = BatchMonitor()
    steps: list[float] = []

    def report(fraction: float) -> None:
        steps.append(fraction)
        monitor.canceled.add("a" * 24)  # the owner cancels during the first step
        monitor.progress = fraction

    monitor.report = report  # type: ignore[method-assign]
    [outcome] = asyncio.run(video_engine.generate([job("a")], monitor))
    assert isinstance(outcome, TaskCanceled)
    assert len(steps) == 1  # of 3: the remaining steps were skipped


def test_an_image_entry_on_a_video_pipeline_is_refused(models_root: Path) -> None:
    engine = _engine(build_video("ltx", models_root / "ltx"))
    with pytest.raises(ConfigurationError, match='kind = "video"'):
        asyncio.run(engine.load())
