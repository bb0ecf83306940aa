"""darkroom.testing's FunctionEngine keeps the local engines' rules for a batch's monitor:
progress moves by one job's share after each job, a job canceled before its turn is answered
"canceled" without running, one canceled while it ran is answered "canceled" too, and a
GenerationError is that job's outcome while any other exception fails the whole call."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from darkroom.engines import BatchMonitor, Catalog, GenerationError, Job, load_engine
from darkroom.errors import TaskCanceled
from darkroom.testing import ENGINE, FunctionEngine, function_model, solid_image


def jobs(count: int) -> list[Job]:
    return [Job(f"task-{index}", f"prompt {index}", 8, 8, seed=index) for index in range(count)]


def engine_of(fn: Callable[[Job], Image.Image]) -> FunctionEngine:
    return FunctionEngine(function_model("fake", fn), fn)


async def test_progress_moves_by_one_jobs_share_after_each_job() -> None:
    monitor = BatchMonitor()
    seen: list[float] = []

    def paint(job: Job) -> Image.Image:
        seen.append(monitor.progress)
        return solid_image(job)

    outcomes = await engine_of(paint).generate(jobs(4), monitor)
    assert seen == [0.0, 0.25, 0.5, 0.75] and monitor.progress == 1.0
    assert [image.size for image in outcomes] == [(8, 8)] * 4


async def test_a_job_canceled_before_its_turn_is_answered_canceled_without_running() -> None:
    monitor = BatchMonitor(canceled={"task-1"})
    ran: list[str] = []

    def paint(job: Job) -> Image.Image:
        ran.append(job.task_id)
        return solid_image(job)

    outcomes = await engine_of(paint).generate(jobs(3), monitor)
    assert ran == ["task-0", "task-2"]
    assert isinstance(outcomes[1], TaskCanceled) and str(outcomes[1]) == "canceled"
    assert isinstance(outcomes[0], Image.Image) and isinstance(outcomes[2], Image.Image)


async def test_a_job_canceled_while_it_runs_is_answered_canceled() -> None:
    monitor = BatchMonitor()

    def canceled_midway(job: Job) -> Image.Image:
        monitor.canceled.add(job.task_id)  # as the worker's heartbeat would, meanwhile
        return solid_image(job)

    [outcome] = await engine_of(canceled_midway).generate(jobs(1), monitor)
    assert isinstance(outcome, TaskCanceled)


async def test_a_generation_error_is_its_jobs_outcome_and_others_raise() -> None:
    def refuse_odd(job: Job) -> Image.Image:
        if job.seed % 2:
            raise GenerationError("refused")
        return solid_image(job)

    outcomes = await engine_of(refuse_odd).generate(jobs(2), BatchMonitor())
    assert isinstance(outcomes[0], Image.Image)
    assert isinstance(outcomes[1], GenerationError) and str(outcomes[1]) == "refused"

    def broken(job: Job) -> Image.Image:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await engine_of(broken).generate(jobs(2), BatchMonitor())


async def test_the_engine_records_each_batch_it_is_given() -> None:
    engine = engine_of(solid_image)
    monitor = BatchMonitor()
    await engine.generate(jobs(3), monitor)
    await engine.generate(jobs(1), BatchMonitor())
    assert engine.batch_sizes == [3, 1]
    assert engine.batches[0].task_ids == ["task-0", "task-1", "task-2"]
    assert engine.batches[0].monitor is monitor


async def test_a_catalog_entry_loads_a_function_engine_by_its_factory(tmp_path: Path) -> None:
    def paint(job: Job) -> Image.Image:
        return Image.new("RGB", (job.width, job.height), "teal")

    catalog = Catalog({"fake": function_model("fake", paint, max_batch=4)})
    engine = load_engine(catalog["fake"], tmp_path)
    assert isinstance(engine, FunctionEngine)
    assert engine.fn is paint and engine.spec.max_batch == 4
    [image] = await engine.generate(jobs(1), BatchMonitor())
    assert image.getpixel((0, 0)) == (0, 128, 128)


def test_equal_seeds_give_equal_images_and_other_seeds_others() -> None:
    [a, b, c] = [Job("t", "p", 4, 4, seed=seed) for seed in (5, 5, 6)]
    assert solid_image(a).tobytes() == solid_image(b).tobytes()
    assert solid_image(a).tobytes() != solid_image(c).tobytes()


async def test_a_settings_file_entry_naming_the_factory_serves_solid_images(tmp_path: Path) -> None:
    catalog = Catalog.from_dict({"fake": {"engine": ENGINE, "max_batch": 2}})
    engine = load_engine(catalog["fake"], tmp_path)
    [job] = jobs(1)
    [image] = await engine.generate([job], BatchMonitor())
    assert image.tobytes() == solid_image(job).tobytes()
