"""A model whose diffusers source loads as a pipeline the engine does not support cannot run
until an operator changes the catalog: its tasks fail on their first attempt with a message
that says so (not "a server error", not after every retry), and the worker does not load its
weights again for each task. Here the source is a tiny SD 1.5 folder saved as a Latent
Consistency Model pipeline, which AutoPipelineForText2Image loads and Darkroom does not run."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest

from darkroom.app import App
from darkroom.config import Settings
from darkroom.engines.local.pipeline import DiffusersEngine
from darkroom.tasks import NewTask, Task, TaskParams, TaskStatus
from tests.support.catalogs import tiny_folder, write_catalog

UNSUPPORTED = "LatentConsistencyModelPipeline"


def unsupported_folder(root: Path) -> Path:
    folder = tiny_folder("sd15", root)
    index_file = folder / "model_index.json"
    index = json.loads(index_file.read_text())
    index["_class_name"] = UNSUPPORTED
    index_file.write_text(json.dumps(index))
    return folder


async def until_finished(app: App, task_ids: list[str], timeout: float = 120) -> list[Task]:
    async def finished() -> list[Task]:
        while True:
            found = [await app.store.get(task_id) for task_id in task_ids]
            if all(t is not None and t.status is TaskStatus.FAILED for t in found):
                return found  # type: ignore[return-value]
            await asyncio.sleep(0.1)

    return await asyncio.wait_for(finished(), timeout)


async def test_an_unsupported_pipeline_fails_its_tasks_at_once_and_is_loaded_once(
    tmp_path, monkeypatch: pytest.MonkeyPatch
):
    loads = []
    from_pretrained = DiffusersEngine._from_pretrained

    def counted(engine: DiffusersEngine):  # type: ignore[no-untyped-def]
        loads.append(engine.spec.id)
        return from_pretrained(engine)

    monkeypatch.setattr(DiffusersEngine, "_from_pretrained", counted)
    source = unsupported_folder(tmp_path / "models")
    entry = {"engine": "diffusers", "source": str(source), "native_size": 128, "max_batch": 1}
    config = write_catalog(tmp_path / "models.toml", {"lcm": entry})
    settings = Settings(data_dir=tmp_path, config=config, max_attempts=3, poll_seconds=0.1)
    async with App.from_settings(settings) as app:
        await app.migrate()
        _, key = await app.keys.create("unit", balance=Decimal(2))
        created = []
        for seed in (1, 2):  # a batch each (max_batch = 1)
            new = NewTask.build(
                key_id=key.id,
                model="lcm",
                prompt="a lighthouse",
                size=(128, 128),
                params=TaskParams(seed),
                max_attempts=3,
                cost=Decimal(1),
            )
            created.append(await app.store.create(new, key, max_queue=10))
        app.start_workers(1)
        failed = await until_finished(app, [task.id for task in created])
        balance = next(k.balance for k in await app.keys.list() if k.id == key.id)
    for task in failed:
        assert task.attempt == 1  # not retried
        assert task.message is not None
        assert task.message.startswith("The model lcm cannot run on this server: ")
        assert UNSUPPORTED in task.message and "server error" not in task.message
        assert task.message.endswith("Please tell the operator.")
    assert loads == ["lcm"]  # the weights were read once, not for each task or attempt
    assert balance == 2  # both charges given back
