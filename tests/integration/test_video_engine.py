"""The diffusers engine on tiny random-weight video pipelines (LTX-Video's LTXPipeline and
LTXImageToVideoPipeline, Wan's WanPipeline as Wan 2.1 T2V and 2.2 TI2V-5B, and its
WanImageToVideoPipeline as Wan 2.1 I2V), built here and loaded back from their folders: the
family read from model_index.json, a clip of the entry's frames at the task's size, from text or
from a first frame, progress per step, cancel between steps, the kind of task a checkpoint
cannot serve refused in words, and an entry whose kind does not match its pipeline refused.

With random weights a VAE maps colours arbitrarily, so a clip's first frame is not closer to
its own reference than to another (measured on the tiny LTX: both clips' first frames were
nearer the blue reference, by 91 against 99 of mean difference). What does hold is that the
first frame changes where its reference changed: LTX and Wan TI2V keep the reference's latents
as the clip's first latent frame, and a VAE's convolutions are local. Wan 2.1 I2V draws its
first frame anew from the reference's latents beside the noise, so there the test is that
another reference gives another clip, and the same one the same clip."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from darkroom.engines import BatchMonitor, GenerationError, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.local.random_video import FIRST_FRAME_VARIANTS, VIDEO_FAMILIES, build_video
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


SMALL = (64, 64)  # the first-frame tests' size: a multiple of LTX's 32 and Wan's 16


@pytest.fixture(scope="module", params=FIRST_FRAME_VARIANTS)
def first_frame_engine(request: pytest.FixtureRequest, models_root: Path) -> Any:
    folder = build_video(request.param, models_root / request.param)
    engine = _engine(folder, kind="video", frames=FRAMES, fps=FPS, steps=2, guidance=3.0)
    asyncio.run(engine.load())
    return engine


def job(
    task: str,
    size: tuple[int, int] = (NATIVE, NATIVE),
    seed: int = 7,
    images: tuple[Image.Image, ...] = (),
) -> Job:
    return Job(
        task_id=task * 24,
        prompt="a fox runs",
        width=size[0],
        height=size[1],
        seed=seed,
        images=images,
    )


def gray(size: tuple[int, int] = SMALL) -> Image.Image:
    return Image.new("RGB", size, (120, 120, 120))


def marked(size: tuple[int, int] = SMALL) -> Image.Image:
    """Gray with a bright square over its top-left quadrant."""
    image = gray(size)
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2 - 1, size[1] // 2 - 1), (250, 250, 40))
    return image


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def clips(engine: Any, jobs: list[Job]) -> list[Any]:
    outcomes = asyncio.run(engine.generate(jobs, BatchMonitor()))
    assert all(isinstance(outcome, Clip) for outcome in outcomes), outcomes
    return outcomes


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


def test_a_video_entry_takes_one_first_frame_unless_it_says_otherwise(models_root: Path) -> None:
    folder = build_video("ltx", models_root / "ltx")
    assert _engine(folder, kind="video").spec.max_images == 1
    assert _engine(folder, kind="video", max_images=0).spec.max_images == 0
    assert _engine(folder).spec.max_images == 0  # an image entry draws from text


def test_each_first_frame_model_answers_a_task_with_an_image_with_a_clip_at_the_task_size(
    first_frame_engine: Any,
) -> None:
    """A square reference for a 2:1 task: scaled to cover it and cropped, never refused."""
    monitor = BatchMonitor()
    [clip] = asyncio.run(
        first_frame_engine.generate([job("a", (128, 64), images=(marked(),))], monitor)
    )
    assert isinstance(clip, Clip)
    assert (len(clip.frames), clip.fps) == (FRAMES, FPS)
    assert {frame.size for frame in clip.frames} == {(128, 64)}
    assert monitor.progress == 1.0


# Wan's VAE attends across the whole frame in its middle block: at 64 x 64 that spreads the
# change everywhere (measured: 34.3 against 33.8), at 128 x 128 it stays near where it was.
@pytest.mark.parametrize(("variant", "size"), [("ltx", SMALL), ("wan-ti2v", (128, 128))])
def test_the_first_frame_changes_where_its_reference_changed(
    models_root: Path, variant: str, size: tuple[int, int]
) -> None:
    engine = _engine(
        build_video(variant, models_root / variant), kind="video", frames=FRAMES, fps=FPS, steps=2
    )
    from_gray, from_marked = clips(
        engine, [job("a", size, images=(gray(size),)), job("b", size, images=(marked(size),))]
    )
    change = np.abs(pixels(from_gray.frames[0]) - pixels(from_marked.frames[0])).mean(axis=2)
    half = size[0] // 2
    marked_quadrant, opposite_quadrant = change[:half, :half].mean(), change[half:, half:].mean()
    # Measured: ltx 8.4 against 1.8, wan-ti2v 21.7 against 6.1.
    assert marked_quadrant > 2 * opposite_quadrant, (marked_quadrant, opposite_quadrant)


def test_wan_i2v_draws_another_clip_from_another_reference_and_the_same_from_the_same(
    models_root: Path,
) -> None:
    engine = _engine(
        build_video("wan-i2v", models_root / "wan-i2v"), kind="video", frames=FRAMES, steps=2
    )
    first, again, other = clips(
        engine,
        [
            job("a", SMALL, images=(gray(),)),
            job("b", SMALL, images=(gray(),)),
            job("c", SMALL, images=(marked(),)),
        ],
    )
    assert [pixels(f).tolist() for f in first.frames] == [pixels(f).tolist() for f in again.frames]
    assert np.abs(pixels(first.frames[0]) - pixels(other.frames[0])).mean() > 1.0


def test_an_image_to_video_folder_serves_text_tasks_where_its_weights_can(
    first_frame_engine: Any,
) -> None:
    [outcome] = asyncio.run(first_frame_engine.generate([job("a", SMALL)], BatchMonitor()))
    if type(first_frame_engine._pipeline).__name__ == "WanImageToVideoPipeline":  # Wan 2.1 I2V
        assert isinstance(outcome, GenerationError)
        assert "send one reference image" in str(outcome)
    else:
        assert isinstance(outcome, Clip) and len(outcome.frames) == FRAMES


def test_a_text_to_video_only_checkpoint_refuses_a_first_frame_in_words(
    models_root: Path,
) -> None:
    """Wan 2.1 T2V: the task with an image fails, the one without in the same batch is drawn."""
    engine = _engine(
        build_video("wan", models_root / "wan"), kind="video", frames=FRAMES, steps=2, max_batch=2
    )
    refused, drawn = asyncio.run(
        engine.generate([job("a", SMALL, images=(gray(),)), job("b", SMALL)], BatchMonitor())
    )
    assert isinstance(refused, GenerationError)
    assert "text only" in str(refused) and "leave out images" in str(refused)
    assert isinstance(drawn, Clip)


def test_a_canceled_clip_from_a_first_frame_stops_at_its_next_step(models_root: Path) -> None:
    engine = _engine(
        build_video("ltx", models_root / "ltx"), kind="video", frames=FRAMES, fps=FPS, steps=3
    )
    monitor = BatchMonitor()
    steps: list[float] = []

    def report(fraction: float) -> None:
        steps.append(fraction)
        monitor.canceled.add("a" * 24)
        monitor.progress = fraction

    monitor.report = report  # type: ignore[method-assign]
    [outcome] = asyncio.run(engine.generate([job("a", SMALL, images=(gray(),))], monitor))
    assert isinstance(outcome, TaskCanceled)
    assert len(steps) == 1  # of 3
