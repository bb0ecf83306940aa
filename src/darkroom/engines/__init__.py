"""Engines turn batches of compatible jobs into images. Each lives in its own module, named
after the engine, and is imported only when a catalog entry uses it, so an API node never loads
torch or a provider's SDK. Each module offers `open_engine(spec, data_dir) -> Engine`."""

from __future__ import annotations

import importlib
from pathlib import Path

from darkroom.engines.base import BatchMonitor, Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import ENGINE_NAMES, Catalog, CatalogError, ModelSpec

__all__ = [
    "BatchMonitor",
    "Catalog",
    "CatalogError",
    "Engine",
    "GenerationError",
    "Job",
    "ModelSpec",
    "Outcome",
    "load_engine",
]


def load_engine(spec: ModelSpec, data_dir: Path) -> Engine:
    if spec.engine not in ENGINE_NAMES:
        raise CatalogError(f'model "{spec.id}": engine must be one of {", ".join(ENGINE_NAMES)}')
    module = importlib.import_module(f"darkroom.engines.{spec.engine}")
    return module.open_engine(spec, data_dir)
