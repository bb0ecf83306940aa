"""The model catalog: which public model ids this server serves, and by which engine.

Read from the settings file (see config.py), one table per model id:

    [models."google-imagen-3"]
    engine = "tiny"          # the engine that serves it
    native_size = 1024       # side of the model's native square; sizes scale from it
    max_batch = 4            # tasks per engine call
    batch_wait_ms = 0        # how long a worker waits for a batch to fill
    # any other key is the engine's own option (source, steps, api_key_env, ...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from darkroom.engines.sizes import DEFAULT_RATIO, RATIOS, REFERENCE_SIDE, size_for
from darkroom.errors import CatalogError

# The built-in engines by the name a catalog entry gives them, and the factory each names.
BUILT_IN_ENGINES = {
    "tiny": "darkroom.engines.local.tiny:open_engine",
    "diffusers": "darkroom.engines.local.pipeline:open_engine",
    "google": "darkroom.engines.upstream.google_images:open_engine",
    "openai": "darkroom.engines.upstream.openai_images:open_engine",
    "relay": "darkroom.engines.upstream.relay:open_engine",
}
ENGINE_NAMES = tuple(BUILT_IN_ENGINES)


# Defaults that suit each engine when an entry leaves them out: a GPU pipeline runs a batch
# of 4 for little more than the cost of 1, and a short wait lets a batch fill.
ENGINE_DEFAULTS: dict[str, dict[str, Any]] = {
    "diffusers": {"max_batch": 4, "batch_wait_ms": 75},
}


@dataclass(frozen=True)
class ModelSpec:
    id: str
    engine: str
    native_size: int = REFERENCE_SIDE
    ratios: tuple[str, ...] = RATIOS
    default_ratio: str = DEFAULT_RATIO
    takes_images: bool = False
    max_batch: int = 1
    batch_wait_ms: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def size_for(self, ratio: str) -> tuple[int, int]:
        return size_for(ratio, self.native_size)

    def batch_key(self, width: int, height: int, params: dict[str, Any]) -> str:
        """Tasks with equal keys can share one engine call. Seeds and prompts may differ;
        anything that changes the pipeline call's shape may not."""
        shared = {k: v for k, v in params.items() if k in ("steps", "guidance")}
        return f"{self.id}|{width}x{height}|{json.dumps(shared, sort_keys=True)}"


_SPEC_FIELDS = {
    "engine",
    "native_size",
    "ratios",
    "default_ratio",
    "takes_images",
    "max_batch",
    "batch_wait_ms",
}


class Catalog:
    def __init__(self, models: dict[str, ModelSpec]) -> None:
        self.models = models

    def __contains__(self, model_id: str) -> bool:
        return model_id in self.models

    def __getitem__(self, model_id: str) -> ModelSpec:
        return self.models[model_id]

    def ids(self) -> list[str]:
        return sorted(self.models)

    @classmethod
    def from_dict(cls, entries: dict[str, dict[str, Any]]) -> Catalog:
        return cls({model_id: _spec(model_id, entry) for model_id, entry in entries.items()})


def _spec(model_id: str, entry: dict[str, Any]) -> ModelSpec:
    engine = entry.get("engine")
    if not isinstance(engine, str) or (engine not in ENGINE_NAMES and ":" not in engine):
        raise CatalogError(
            f'model "{model_id}" must name an engine, one of: {", ".join(ENGINE_NAMES)}, '
            'or a factory as "package.module:name"'
        )
    known = {**ENGINE_DEFAULTS.get(entry["engine"], {})}
    known.update({k: v for k, v in entry.items() if k in _SPEC_FIELDS})
    if "ratios" in known:
        unknown = set(known["ratios"]) - set(RATIOS)
        if unknown:
            raise CatalogError(f'model "{model_id}": unknown ratios {sorted(unknown)}')
        known["ratios"] = tuple(known["ratios"])
    options = {k: v for k, v in entry.items() if k not in _SPEC_FIELDS}
    return ModelSpec(id=model_id, **known, options=options)
