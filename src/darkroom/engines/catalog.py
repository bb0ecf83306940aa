"""The model catalog: which public model ids this server serves, and by which engine.

Read from the settings file (see config.py), one table per model id:

    [models."google-imagen-3"]
    engine = "tiny"          # the engine that serves it
    native_size = 1024       # side of the model's native square; sizes scale from it
    max_batch = 4            # tasks per engine call
    batch_wait_ms = 0        # how long a worker waits for a batch to fill
    max_images = 1           # reference images a request may send (0: none; default: the engine's)
    images_override_ar = true  # an edit keeps the first image's shape, not the request's ar
    # any other key is the engine's own option (source, steps, api_key_env, ...)

A built-in engine's options are checked here, against the model its registry entry names, so a
catalog that cannot work stops the node at start (docs/models.md lists every option).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from darkroom.engines.local.options import DiffusersOptions, TinyOptions
from darkroom.engines.options import EngineOptions
from darkroom.engines.sizes import DEFAULT_RATIO, RATIOS, REFERENCE_SIDE, nearest_ratio, size_for
from darkroom.engines.upstream.options import GoogleOptions, OpenAIOptions, RelayOptions
from darkroom.errors import CatalogError


@dataclass(frozen=True)
class BuiltInEngine:
    factory: str
    """`module:function`, imported only when an entry uses it (on workers)."""
    options: type[EngineOptions]
    """The model of its options, checked when the catalog loads (on every node)."""
    defaults: dict[str, Any] = field(default_factory=dict)
    """Entry keys (max_batch, ...) that suit it when an entry leaves them out."""


# The built-in engines by the name a catalog entry gives them. A GPU pipeline runs a batch of 4
# for little more than the cost of 1, and a short wait lets a batch fill.
BUILT_IN_ENGINES = {
    "tiny": BuiltInEngine("darkroom.engines.local.tiny:open_engine", TinyOptions),
    "diffusers": BuiltInEngine(
        "darkroom.engines.local.pipeline:open_engine",
        DiffusersOptions,
        {"max_batch": 4, "batch_wait_ms": 75},
    ),
    "google": BuiltInEngine("darkroom.engines.upstream.google_images:open_engine", GoogleOptions),
    "openai": BuiltInEngine("darkroom.engines.upstream.openai_images:open_engine", OpenAIOptions),
    "relay": BuiltInEngine("darkroom.engines.upstream.relay:open_engine", RelayOptions),
}
ENGINE_NAMES = tuple(BUILT_IN_ENGINES)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    engine: str
    native_size: int = REFERENCE_SIDE
    ratios: tuple[str, ...] = RATIOS
    default_ratio: str = DEFAULT_RATIO
    max_images: int = 0
    """Reference images a task may carry: 0 takes none, a first-frame model takes 1."""
    images_override_ar: bool = False
    """An edit keeps its input's shape: with images, the size follows the first one's ratio."""
    max_batch: int = 1
    batch_wait_ms: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    """The engine's own keys, as the entry wrote them."""
    engine_options: EngineOptions | None = None
    """The same, validated: a built-in engine's options model; None for a custom engine."""

    @property
    def takes_images(self) -> bool:
        return self.max_images > 0

    def size_for(self, ratio: str) -> tuple[int, int]:
        return size_for(ratio, self.native_size)

    def size_for_image(self, width: int, height: int) -> tuple[int, int]:
        """The size of an edit of a width x height picture: the model's nearest ratio."""
        return self.size_for(nearest_ratio(width, height, self.ratios))


_SPEC_FIELDS = {
    "engine",
    "native_size",
    "ratios",
    "default_ratio",
    "max_images",
    "images_override_ar",
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
    built_in = BUILT_IN_ENGINES.get(engine)
    known = {**(built_in.defaults if built_in else {})}
    known.update({k: v for k, v in entry.items() if k in _SPEC_FIELDS})
    if "ratios" in known:
        unknown = set(known["ratios"]) - set(RATIOS)
        if unknown:
            raise CatalogError(f'model "{model_id}": unknown ratios {sorted(unknown)}')
        known["ratios"] = tuple(known["ratios"])
    options = {k: v for k, v in entry.items() if k not in _SPEC_FIELDS}
    typed = built_in.options.parse(model_id, engine, options) if built_in else None
    known.setdefault("max_images", typed.max_images if typed else 0)
    if not isinstance(known["max_images"], int) or known["max_images"] < 0:
        raise CatalogError(f'model "{model_id}": max_images must be a whole number, 0 or more')
    return ModelSpec(id=model_id, **known, options=options, engine_options=typed)
