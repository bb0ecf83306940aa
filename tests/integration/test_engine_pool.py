"""The engine pool's memory policy on a CPU with a small budget: loading a model when the budget
is short unloads the least recently used one (and really frees it), never one running a
batch."""

from __future__ import annotations

import asyncio
import gc
import weakref
from pathlib import Path

import pytest

from darkroom.engines import BatchMonitor, Catalog, Job
from darkroom.worker import EnginePool
from tests.support.catalogs import tiny_folder

MB = 1024 * 1024


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    root = tmp_path_factory.mktemp("pool-models")
    entry = {"engine": "diffusers", "native_size": 128, "steps": 1}
    return Catalog.from_dict(
        {
            family: {**entry, "source": str(tiny_folder(family, root))}
            for family in ("sd15", "sdxl", "sd3")
        }
    )


def footprints(catalog: Catalog, tmp_path: Path) -> dict[str, int]:
    async def measure() -> dict[str, int]:
        pool = EnginePool(catalog, tmp_path)
        sizes = {m: (await pool.get(m)).memory_bytes() for m in catalog.ids()}
        await pool.close()
        return sizes

    return asyncio.run(measure())


def test_loading_past_the_budget_unloads_the_least_recently_used(catalog, tmp_path):
    sizes = footprints(catalog, tmp_path)
    # Room for any two of the three models, never for all three.
    budget = sum(sizes.values()) - min(sizes.values()) / 2

    async def scenario() -> None:
        pool = EnginePool(catalog, tmp_path, memory_budget_mb=budget / MB)
        first = await pool.get("sd15")
        pipeline = weakref.ref(first._pipeline)
        await pool.get("sdxl")
        await pool.get("sd15")  # used again: now sdxl is the least recently used
        assert pool.loaded() == ["sdxl", "sd15"]
        await pool.get("sd3")
        assert pool.loaded() == ["sd15", "sd3"]  # sdxl went
        await pool.get("sdxl")
        assert pool.loaded() == ["sd3", "sdxl"]  # then sd15 went, and its memory with it
        assert first._pipeline is None
        gc.collect()
        assert pipeline() is None
        await pool.close()

    asyncio.run(scenario())


def test_an_engine_running_a_batch_is_never_unloaded(catalog, tmp_path):
    sizes = footprints(catalog, tmp_path)
    budget = max(sizes.values()) * 1.1  # one model at a time

    async def scenario() -> None:
        pool = EnginePool(catalog, tmp_path, memory_budget_mb=budget / MB)
        async with pool.use("sd15") as engine:
            await pool.get("sdxl")  # short of memory, but sd15 is busy: both stay
            assert pool.loaded() == ["sd15", "sdxl"]
            job = Job("a" * 24, "a cat", 128, 128, seed=1)
            [image] = await engine.generate([job], BatchMonitor())
            assert image.size == (128, 128)
        await pool.get("sd3")  # now both others are idle and must go
        assert pool.loaded() == ["sd3"]
        await pool.close()

    asyncio.run(scenario())


def test_an_upstream_engine_never_unloads_a_model(catalog, tmp_path, monkeypatch):
    """An upstream engine holds an HTTP client, not weights: opening one with the budget full
    leaves the loaded models in place."""
    monkeypatch.setenv("RELAY_TEST_KEY", "dk_relay")
    upstream = {
        "engine": "relay",
        "base_url": "http://127.0.0.1:9",
        "api_key_env": "RELAY_TEST_KEY",
    }
    both = Catalog({**catalog.models, **Catalog.from_dict({"relayed": upstream}).models})
    sizes = footprints(catalog, tmp_path)

    async def scenario() -> None:
        pool = EnginePool(both, tmp_path, memory_budget_mb=sizes["sd15"] * 1.01 / MB)
        await pool.get("sd15")
        await pool.get("relayed")
        assert pool.loaded() == ["sd15", "relayed"]
        await pool.close()

    asyncio.run(scenario())
