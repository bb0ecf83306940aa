"""Engines turn batches of compatible jobs into images. Each lives in its own module and is
imported only when a catalog entry uses it, so an API node never loads torch."""

from __future__ import annotations

from pathlib import Path

from darkroom.engines.base import Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import ENGINE_NAMES, Catalog, CatalogError, ModelSpec

__all__ = [
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
    if spec.engine == "tiny":
        from darkroom.engines.tiny import TinyEngine

        return TinyEngine(spec, data_dir / "models")
    raise CatalogError(f'model "{spec.id}": engine must be one of {", ".join(ENGINE_NAMES)}')
