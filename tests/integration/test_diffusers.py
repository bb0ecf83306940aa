"""The diffusers engine on tiny pipelines of each supported family (SD 1.5, SDXL, SD 3, FLUX),
built here, saved with save_pretrained and loaded back through AutoPipelineForText2Image:
family detection and defaults, sizes, seeds alone and in batches, negative prompts, cancellation
and out-of-memory recovery."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from darkroom.engines import BatchMonitor, GenerationError, Job, load_engine
from darkroom.engines.catalog import Catalog
from darkroom.engines.local.random_weights import FAMILIES
from darkroom.engines.local.steps import OUT_OF_MEMORY, run_jobs
from darkroom.errors import CANCELED_MESSAGE
from tests.support.catalogs import tiny_folder

NATIVE = 128  # tiny models: 1:1 is 128 x 128, 16:9 is 192 x 128


# -- helpers other test modules share ------------------------------------------------------------


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def assert_same_image(a: Image.Image, b: Image.Image) -> None:
    """Equal up to float rounding: a batched matmul may sum in another order than a single one,
    which moves a few pixels by one level of 255."""
    difference = np.abs(pixels(a) - pixels(b))
    assert difference.max() <= 2 and difference.mean() < 0.05, (difference.max(), difference.mean())


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


def _engine(folder: Path, **options: Any) -> Any:
    entry = {"engine": "diffusers", "source": str(folder), "native_size": NATIVE, **options}
    return load_engine(Catalog.from_dict({"m": entry})["m"], folder.parent)


@pytest.fixture(scope="module", params=FAMILIES)
def family_engine(request: pytest.FixtureRequest, models_root: Path) -> Any:
    engine = _engine(tiny_folder(request.param, models_root), steps=2, guidance=4.0)
    asyncio.run(engine.load())
    return engine


def job(task: str, prompt: str = "a red fox", seed: int = 7, size=(NATIVE, NATIVE), **kw) -> Job:
    return Job(task_id=task * 24, prompt=prompt, width=size[0], height=size[1], seed=seed, **kw)


def generate(engine: Any, jobs: list[Job], monitor: BatchMonitor | None = None) -> list[Any]:
    return asyncio.run(engine.generate(jobs, monitor or BatchMonitor()))


# -- per family ----------------------------------------------------------------------------------


def test_each_family_loads_from_its_saved_folder_and_is_recognised(family_engine):
    assert (Path(family_engine.source) / "model_index.json").exists()
    expected = {
        "sd15": "StableDiffusionPipeline",
        "sdxl": "StableDiffusionXLPipeline",
        "sd3": "StableDiffusion3Pipeline",
        "flux": "FluxPipeline",
    }[family_engine.family.name]
    assert type(family_engine._pipeline).__name__ == expected


def test_each_family_generates_at_the_task_size_without_resizing(family_engine):
    wide = family_engine.spec.size_for("16:9")
    assert wide == (192, 128)
    [image] = generate(family_engine, [job("a", size=wide)])
    assert image.size == wide


def test_each_family_gives_a_seed_the_same_image_alone_and_in_a_batch(family_engine):
    [alone] = generate(family_engine, [job("a", seed=7)])
    batch = generate(
        family_engine,
        [
            job("b", "another prompt", seed=1, negative_prompt="blurry"),
            job("a", seed=7),
            job("c", "a third", seed=2),
        ],
    )
    assert_same_image(alone, batch[1])
    assert np.abs(pixels(batch[1]) - pixels(batch[2])).mean() > 1  # other seeds differ


IMAGE_TO_IMAGE = {
    "sd15": "StableDiffusionImg2ImgPipeline",
    "sdxl": "StableDiffusionXLImg2ImgPipeline",
    "sd3": "StableDiffusion3Img2ImgPipeline",
    "flux": "FluxImg2ImgPipeline",
}


def test_each_family_draws_from_a_reference_image_in_a_call_of_its_own(family_engine):
    reference = Image.new("RGB", (300, 200), (230, 20, 20))
    calls: list[list[str]] = []
    call = family_engine._call

    def counting(pipeline: Any, jobs: list[Job], callback: Any) -> Any:
        calls.append([j.task_id[0] for j in jobs])
        return call(pipeline, jobs, callback)

    family_engine._call = counting
    try:
        with_image, plain = generate(family_engine, [job("a", images=(reference,)), job("b")])
    finally:
        del family_engine._call
    derived = family_engine._image_to_image
    assert type(derived).__name__ == IMAGE_TO_IMAGE[family_engine.family.name]
    assert derived.vae is family_engine._pipeline.vae  # from_pipe: the same weights
    assert with_image.size == plain.size == (NATIVE, NATIVE)
    assert np.abs(pixels(with_image) - pixels(plain)).mean() > 1  # same seed and prompt
    assert sorted(calls) == [["a"], ["b"]]  # with and without images never share a call


class EditPipeline:
    """Stands in for a FLUX Kontext-style pipeline: its own call takes the image."""

    def __call__(self, prompt: Any, image: Any = None, width: int = 0, height: int = 0) -> Any:
        raise AssertionError("not called here")


def test_a_pipeline_that_takes_an_image_is_its_own_edit_pipeline(models_root):
    engine = _engine(tiny_folder("sd15", models_root))
    reference = Image.new("RGB", (300, 200))
    arguments: dict[str, Any] = {"prompt": ["x"], "width": 128, "height": 96}
    edit = EditPipeline()
    assert engine._from_reference(edit, [job("a", images=(reference,))], arguments) is edit
    assert engine._image_to_image is None and "strength" not in arguments
    assert [image.size for image in arguments["image"]] == [(128, 96)]
    assert (arguments["width"], arguments["height"]) == (128, 96)


# -- defaults and options ------------------------------------------------------------------------


def test_flux_without_guidance_embedding_gets_schnell_defaults(models_root):
    engine = _engine(tiny_folder("flux", models_root))
    asyncio.run(engine.load())
    assert engine.family.name == "flux"
    assert (engine.steps, engine.guidance) == (4, 0.0)
    assert not engine.family.negative_prompt  # FLUX takes no negative prompt


def test_a_turbo_checkpoint_gets_one_step_and_no_guidance(models_root):
    turbo = models_root / "sdxl-turbo"
    if not turbo.exists():
        shutil.copytree(tiny_folder("sdxl", models_root), turbo)
    engine = _engine(turbo)
    asyncio.run(engine.load())
    assert (engine.family.name, engine.steps, engine.guidance) == ("sdxl", 1, 0.0)
    [image] = generate(engine, [job("a")])
    assert image.size == (NATIVE, NATIVE)


def test_the_catalog_entry_overrides_the_family_defaults(models_root):
    engine = _engine(tiny_folder("sd3", models_root), steps=3, guidance=4.5, dtype="float32")
    asyncio.run(engine.load())
    assert (engine.steps, engine.guidance) == (3, 4.5)
    assert engine._pipeline.transformer.dtype == torch.float32
    assert engine.device == "cpu"  # device auto without CUDA


def test_a_negative_prompt_changes_the_image(models_root):
    engine = _engine(tiny_folder("sd15", models_root), steps=2, guidance=7.0)
    plain, negative = generate(engine, [job("a"), job("b", negative_prompt="green trees")])
    assert np.abs(pixels(plain) - pixels(negative)).mean() > 1


# -- cancellation and progress inside the engine -------------------------------------------------


def test_progress_reaches_the_monitor_step_by_step(models_root):
    engine = _engine(tiny_folder("sd15", models_root), steps=4)
    seen: list[float] = []

    class Recording(BatchMonitor):
        def report(self, fraction: float) -> None:
            seen.append(fraction)
            super().report(fraction)

    generate(engine, [job("a")], Recording())
    assert seen == [0.25, 0.5, 0.75, 1.0]


def test_a_batch_whose_tasks_are_all_canceled_stops_at_the_next_step(models_root):
    engine = _engine(tiny_folder("sd15", models_root), steps=10_000)
    asyncio.run(engine.load())
    monitor = BatchMonitor()
    jobs = [job("a"), job("b", seed=8)]
    outcomes: list[Any] = []
    runner = threading.Thread(target=lambda: outcomes.extend(generate(engine, jobs, monitor)))
    runner.start()
    while monitor.progress == 0 and runner.is_alive():
        runner.join(0.01)
    monitor.canceled |= {j.task_id for j in jobs}  # what the worker's heartbeat does
    runner.join(120)
    assert not runner.is_alive()
    assert [str(o) for o in outcomes] == [CANCELED_MESSAGE, CANCELED_MESSAGE]
    assert all(isinstance(o, GenerationError) for o in outcomes)
    assert monitor.progress < 0.5  # it did not run its remaining steps


def test_a_task_canceled_in_a_batch_that_goes_on_is_answered_canceled(models_root):
    engine = _engine(tiny_folder("sd15", models_root), steps=2)
    monitor = BatchMonitor(canceled={"b" * 24})
    kept, canceled = generate(engine, [job("a"), job("b")], monitor)
    assert isinstance(kept, Image.Image)
    assert isinstance(canceled, GenerationError) and str(canceled) == CANCELED_MESSAGE


# -- out of memory -------------------------------------------------------------------------------


def test_a_batch_out_of_memory_is_retried_one_task_at_a_time():
    calls: list[int] = []

    def call(jobs: list[Job], _callback: Any) -> list[Image.Image]:
        calls.append(len(jobs))
        if len(jobs) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [Image.new("RGB", (8, 8))]

    outcomes = run_jobs(call, [job("a"), job("b"), job("c")], BatchMonitor())
    assert calls == [3, 1, 1, 1]
    assert all(isinstance(o, Image.Image) for o in outcomes)


def test_a_single_task_out_of_memory_fails_alone_with_a_clear_message():
    def call(jobs: list[Job], _callback: Any) -> list[Image.Image]:
        if any(j.task_id == "b" * 24 for j in jobs):
            raise torch.OutOfMemoryError("CUDA out of memory")
        return [Image.new("RGB", (8, 8)) for _ in jobs]

    outcomes = run_jobs(call, [job("a"), job("b")], BatchMonitor())
    assert isinstance(outcomes[0], Image.Image)
    assert isinstance(outcomes[1], GenerationError) and str(outcomes[1]) == OUT_OF_MEMORY


def test_diffusers_entries_default_to_gpu_batching():
    catalog = Catalog.from_dict(
        {
            "plain": {"engine": "diffusers", "source": "stabilityai/sdxl-turbo"},
            "tuned": {"engine": "diffusers", "source": "x", "max_batch": 8, "batch_wait_ms": 0},
        }
    )
    assert (catalog["plain"].max_batch, catalog["plain"].batch_wait_ms) == (4, 75)
    assert (catalog["tuned"].max_batch, catalog["tuned"].batch_wait_ms) == (8, 0)
