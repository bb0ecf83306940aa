"""The engines a worker process has loaded: one per model, shared by its workers and kept while
memory allows (a pipeline is expensive to load).

Before loading a model, the pool makes room for it: while the device has less free memory than
the model needs, it unloads the least recently used engine that no batch is using. "Free" is
CUDA's own count on a GPU, the kernel's MemAvailable on a CPU, and in either case at most what
an operator's budget (`memory_budget_mb`) leaves beside the engines already loaded. What a model
needs is what it took when last loaded, else its weights' size on disk, else the largest engine
loaded now. Engines without local weights (upstream providers) take no room and are never
unloaded for it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import structlog

from darkroom.engines import Catalog, CatalogError, Engine, load_engine
from darkroom.engines.local.memory import device_free_bytes
from darkroom.engines.local.steps import is_out_of_memory

log = structlog.get_logger("darkroom.worker")

MB = 1024 * 1024


class EnginePool:
    def __init__(
        self, catalog: Catalog, data_dir: Path, *, memory_budget_mb: float | None = None
    ) -> None:
        self.catalog = catalog
        self.data_dir = data_dir
        self.budget = int(memory_budget_mb * MB) if memory_budget_mb else None
        self._engines: OrderedDict[str, Engine] = OrderedDict()  # least recently used first
        self._in_use: dict[str, int] = {}
        self._footprints: dict[str, int] = {}  # bytes each model took when last loaded
        self._lock = asyncio.Lock()

    def loaded(self) -> list[str]:
        """Model ids loaded now, least recently used first."""
        return list(self._engines)

    @asynccontextmanager
    async def use(self, model_id: str) -> AsyncIterator[Engine]:
        """The model's engine, loaded if need be, kept from unloading while in use."""
        engine = await self.get(model_id)
        self._in_use[model_id] = self._in_use.get(model_id, 0) + 1
        try:
            yield engine
        finally:
            self._in_use[model_id] -= 1

    async def get(self, model_id: str) -> Engine:
        async with self._lock:
            if model_id in self._engines:
                self._engines.move_to_end(model_id)
                return self._engines[model_id]
            engine = load_engine(self.catalog[model_id], self.data_dir)
            if engine.holds_weights:
                await self._make_room(model_id, engine)
            await self._load(engine)
            self._engines[model_id] = engine
            self._footprints[model_id] = engine.memory_bytes()
            log.info("engine loaded", model=model_id, mb=round(self._footprints[model_id] / MB, 1))
            return engine

    async def _load(self, engine: Engine) -> None:
        """Loads now, so its memory counts before the next model; out of memory while loading
        (the estimate was short), unloads the least recently used engine and tries again."""
        while True:
            try:
                await engine.load()
                return
            except Exception as exc:
                victim = self._victim()
                if victim is None or not is_out_of_memory(exc):
                    raise
            await self.unload(victim)

    async def _make_room(self, model_id: str, engine: Engine) -> None:
        need = (
            self._footprints.get(model_id) or engine.memory_bytes() or max(self._sizes(), default=0)
        )
        while need and self._free(engine) < need:
            victim = self._victim()
            if victim is None:
                log.warning("memory short; nothing left to unload", model=model_id)
                return
            await self.unload(victim)

    def _victim(self) -> str | None:
        """The least recently used engine that holds memory and runs no batch."""
        return next(
            (m for m in self._engines if not self._in_use.get(m) and self._footprints.get(m)),
            None,
        )

    def _sizes(self) -> list[int]:
        return [self._footprints.get(m, 0) for m in self._engines]

    def _free(self, engine: Engine) -> int:
        free = device_free_bytes(engine.device or "cpu")
        if self.budget is not None:
            left = self.budget - sum(self._sizes())
            free = left if free is None else min(free, left)
        return free if free is not None else 1 << 62

    async def unload(self, model_id: str) -> None:
        engine = self._engines.pop(model_id)
        await engine.close()  # frees the pipeline (and CUDA's cache) for the next model
        log.info("engine unloaded", model=model_id, reason="least recently used")

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()


async def configuration_problems(catalog: Catalog, models: list[str], data_dir: Path) -> list[str]:
    """Opens each model's engine without loading it, so that a configuration that cannot work
    (no credentials, no source) stops a worker at start instead of failing every task."""
    problems = []
    for model_id in models:
        try:
            engine = load_engine(catalog[model_id], data_dir)
        except CatalogError as exc:
            problems.append(str(exc))
            continue
        await engine.close()
    return problems
