"""Engines turn batches of compatible jobs into images. Two kinds live here: `local/` runs
diffusers pipelines on this machine's device, `upstream/` calls a provider over HTTP. Each
engine module is imported only when a catalog entry uses it, so an API node never loads torch
or a provider's SDK. Each offers a factory `open_engine(spec, data_dir) -> Engine`.

A catalog entry names a built-in engine (`engine = "diffusers"`) or any importable factory
(`engine = "mypackage.engines:open_engine"`), so users add engines without forking. Every engine
is a subclass of `Engine` (base.py), the one contract the worker's engine pool relies on; a
built-in engine's options are its own pydantic model, checked when the catalog loads (options.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from darkroom.engines.base import BatchMonitor, Engine, GenerationError, Job, Outcome
from darkroom.engines.catalog import BUILT_IN_ENGINES, Catalog, CatalogError, ModelSpec

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

EngineFactory = Callable[[ModelSpec, Path], Engine]


def load_engine(spec: ModelSpec, data_dir: Path) -> Engine:
    return engine_factory(spec)(spec, data_dir)


def engine_factory(spec: ModelSpec) -> EngineFactory:
    """The factory a catalog entry names: a built-in engine's, or `package.module:name`."""
    built_in = BUILT_IN_ENGINES.get(spec.engine)
    target = built_in.factory if built_in else spec.engine
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise CatalogError(f'model "{spec.id}": cannot load engine {spec.engine!r}: {exc}') from exc
    if not callable(factory):
        raise CatalogError(f'model "{spec.id}": engine {spec.engine!r} is not callable')
    return factory
