"""The model catalog: which public model ids this server serves, and by which engine.

Read from the settings file (see config.py), one table per model id:

    [models."google-imagen-3"]
    engine = "tiny"          # the engine that serves it
    native_size = 1024       # side of the model's native square; sizes scale from it
    max_batch = 4            # tasks per engine call
    batch_wait_ms = 0        # how long a worker waits for a batch to fill
    price = 0.5              # what one task costs its key (default 0: free; docs/money.md)
    ratios = ["1:1", "16:9"] # a subset of the spec's seven (default: all of them)
    max_prompt = 400         # the model's cap on a prompt's length after trimming (default 4000)
    max_images = 1           # reference images a request may send (0: none; default: the engine's)
    images_override_ar = true  # an edit keeps the first image's shape, not the request's ar
    kind = "video"           # image (default), video or audio: the result's container and shape
    frames = 49              # video: frames per clip (default 49)
    fps = 24                 # video: frames per second (default 24)
    # any other key is the engine's own option (source, steps, api_key_env, ...)

A built-in engine's options are checked here, against the model its registry entry names, so a
catalog that cannot work stops the node at start (docs/models.md lists every option). So do
the per-model rules the API checks requests against (ratios, default_ratio, max_prompt): a value
out of the spec's range would otherwise turn every request for the model away, or let through
what the spec forbids (tests/unit/test_catalog_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from darkroom.engines.local.demo_options import DemoOptions
from darkroom.engines.local.options import DiffusersOptions, MusicgenOptions, TinyOptions
from darkroom.engines.options import EngineOptions
from darkroom.engines.sizes import DEFAULT_RATIO, RATIOS, REFERENCE_SIDE, nearest_ratio, size_for
from darkroom.engines.upstream.options import GoogleOptions, OpenAIOptions, RelayOptions
from darkroom.errors import CatalogError
from darkroom.money import ZERO, AmountError, parse_amount

MAX_PROMPT = 4000
"""The spec's cap on a prompt's length after trimming; a model may set a lower one."""

KINDS = ("image", "video", "audio")
"""What a model makes: a WebP image, an MP4 (H.264) clip, or MP3 tracks."""
DEFAULT_FRAMES = 49  # LTX-Video's and Wan's clips are 8k + 1 frames long
DEFAULT_FPS = 24


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
    # `make serve`'s: a real model from the Hugging Face hub, else `tiny` (local/demo.py).
    "demo": BuiltInEngine("darkroom.engines.local.demo:open_engine", DemoOptions),
    "diffusers": BuiltInEngine(
        "darkroom.engines.local.pipeline:open_engine",
        DiffusersOptions,
        {"max_batch": 4, "batch_wait_ms": 75},
    ),
    "musicgen": BuiltInEngine(
        "darkroom.engines.local.audio:open_engine", MusicgenOptions, {"kind": "audio"}
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
    max_prompt: int = MAX_PROMPT
    max_batch: int = 1
    batch_wait_ms: int = 0
    price: Decimal = ZERO
    """What one task of this model charges its key."""
    kind: str = "image"
    """image, video or audio: decides the result's container, key, content type and shape."""
    frames: int = DEFAULT_FRAMES
    """Video: frames per clip."""
    fps: int = DEFAULT_FPS
    """Video: frames per second of the clip."""
    options: dict[str, Any] = field(default_factory=dict)
    """The engine's own keys, as the entry wrote them."""
    engine_options: EngineOptions | None = None
    """The same, validated: a built-in engine's options model; None for a custom engine."""

    @property
    def takes_images(self) -> bool:
        return self.max_images > 0

    @property
    def clip_shape(self) -> tuple[int, int] | None:
        """A video's frames and fps, which tasks must share to share an engine call."""
        return (self.frames, self.fps) if self.kind == "video" else None

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
    "max_prompt",
    "takes_images",  # an older entry's: true reads as max_images = 1
    "max_batch",
    "batch_wait_ms",
    "price",
    "kind",
    "frames",
    "fps",
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
    known.update(_request_rules(model_id, known))
    known.update(_media_rules(model_id, known, entry))
    if "price" in known:
        known["price"] = _price(model_id, known["price"])
    options = {k: v for k, v in entry.items() if k not in _SPEC_FIELDS}
    typed = built_in.options.parse(model_id, engine, options) if built_in else None
    known["max_images"] = _max_images(model_id, known, typed)
    return ModelSpec(id=model_id, **known, options=options, engine_options=typed)


def _price(model_id: str, value: object) -> Decimal:
    try:
        price = parse_amount(value)
    except AmountError as exc:
        raise CatalogError(f'model "{model_id}": price {exc}') from None
    if price < 0:
        raise CatalogError(f'model "{model_id}": price {value!r} is negative')
    return price


def _max_images(model_id: str, known: dict[str, Any], typed: EngineOptions | None) -> int:
    """The entry's `max_images`; else 1 or 0 for an older entry's `takes_images`; else what
    the engine knows its model takes (0 for a custom engine)."""
    takes_images = known.pop("takes_images", None)
    if "max_images" in known:
        count = known["max_images"]
    elif takes_images is not None:
        count = 1 if takes_images else 0
    else:
        count = typed.max_images_for(known["kind"]) if typed else 0
    if type(count) is not int or count < 0:
        raise CatalogError(
            f'model "{model_id}": max_images must be a whole number, 0 or more; got {count!r}'
        )
    return count


def _request_rules(model_id: str, known: dict[str, Any]) -> dict[str, Any]:
    """The entry's ratios, default ratio and prompt cap, checked against the spec's ranges."""
    ratios = _ratios(model_id, known.get("ratios", RATIOS))
    default_ratio = known.get("default_ratio", _default_ratio(ratios))
    if default_ratio not in ratios:
        raise CatalogError(
            f'model "{model_id}": default_ratio must be one of its ratios {list(ratios)}; '
            f"got {default_ratio!r}"
        )
    max_prompt = known.get("max_prompt", MAX_PROMPT)
    if type(max_prompt) is not int or not 1 <= max_prompt <= MAX_PROMPT:
        raise CatalogError(
            f'model "{model_id}": max_prompt must be a whole number from 1 to {MAX_PROMPT}; '
            f"got {max_prompt!r}"
        )
    return {"ratios": ratios, "default_ratio": default_ratio, "max_prompt": max_prompt}


def _media_rules(model_id: str, known: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """The entry's kind, and a video's frames and fps. A clip fills a GPU alone, so a video
    model's batch is 1 unless its entry says otherwise (not its engine's image default)."""
    kind = known.get("kind", "image")
    if kind not in KINDS:
        raise CatalogError(f'model "{model_id}": kind must be one of {list(KINDS)}; got {kind!r}')
    rules: dict[str, Any] = {"kind": kind}
    for name, default, top in (("frames", DEFAULT_FRAMES, 1000), ("fps", DEFAULT_FPS, 120)):
        value = known.get(name, default)
        if type(value) is not int or not 1 <= value <= top:
            raise CatalogError(
                f'model "{model_id}": {name} must be a whole number from 1 to {top}; got {value!r}'
            )
        rules[name] = value
    if kind == "video" and "max_batch" not in entry:
        rules["max_batch"] = 1
    return rules


def _default_ratio(ratios: tuple[str, ...]) -> str:
    """1:1 as the spec's default, or the first ratio of a model that lacks it."""
    return DEFAULT_RATIO if DEFAULT_RATIO in ratios else ratios[0]


def _ratios(model_id: str, ratios: Any) -> tuple[str, ...]:
    """A non-empty list of the spec's ratios, without repeats, in the order written."""
    if not isinstance(ratios, list | tuple) or not ratios:
        raise CatalogError(
            f'model "{model_id}": ratios must be a non-empty list of {list(RATIOS)}; got {ratios!r}'
        )
    unknown = [r for r in ratios if r not in RATIOS]
    if unknown:
        raise CatalogError(f'model "{model_id}": unknown ratios {unknown}; use {list(RATIOS)}')
    return tuple(dict.fromkeys(ratios))
