"""The engines a worker process has loaded: one per model, shared by its workers and kept for
the process's life (a pipeline is expensive to load)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from darkroom.engines import Catalog, Engine, load_engine


class EnginePool:
    def __init__(self, catalog: Catalog, data_dir: Path) -> None:
        self.catalog = catalog
        self.data_dir = data_dir
        self._engines: dict[str, Engine] = {}
        self._lock = asyncio.Lock()

    async def get(self, model_id: str) -> Engine:
        async with self._lock:
            if model_id not in self._engines:
                self._engines[model_id] = load_engine(self.catalog[model_id], self.data_dir)
            return self._engines[model_id]

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()
