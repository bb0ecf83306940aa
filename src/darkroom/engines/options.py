"""An engine's options as a typed model, checked when the catalog loads.

Each built-in engine names its options' model in the catalog's registry (catalog.py); a value
that cannot work (`steps = "many"`, `max_in_flight = 0`, an option the engine does not have)
stops the node at start with a CatalogError naming the model and the option, instead of failing
every task later. The models live in light modules (`local/options.py`, `upstream/options.py`)
because API nodes load the catalog too and must never import torch or a provider's SDK
(tests/integration/test_upstream_imports.py). A custom engine (`"package.module:factory"`)
keeps free-form options: it reads `spec.options` as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from darkroom.errors import CatalogError

if TYPE_CHECKING:
    from darkroom.engines.catalog import ModelSpec

# An aspect ratio as the media API writes it ("16:9"), and an HTTP(S) endpoint.
Ratio = Annotated[str, StringConstraints(pattern=r"^\d+:\d+$")]
HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$")]


class EngineOptions(BaseModel):
    """The options of one engine; unknown keys are refused so that a typo is not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @property
    def max_images(self) -> int:
        """The reference images a task of this engine may carry when the entry does not say
        (`max_images`): none, unless the engine knows what its model takes."""
        return 0

    def max_images_for(self, kind: str) -> int:
        """`max_images` for a model of this kind (image, video, audio): the same for most
        engines; one whose video models take a first frame says so here."""
        return self.max_images

    @classmethod
    def parse(cls, model_id: str, engine: str, options: Mapping[str, Any]) -> Self:
        """The options of a catalog entry, or a CatalogError naming each option that is wrong."""
        try:
            return cls.model_validate(dict(options))
        except ValidationError as exc:
            problems = "; ".join(_problem(engine, error) for error in exc.errors())
            raise CatalogError(f'model "{model_id}": {problems}') from None

    @classmethod
    def of(cls, spec: ModelSpec) -> Self:
        """The entry's options as the catalog validated them (parsed again for a spec built by
        hand, or one whose options are another engine's)."""
        if isinstance(spec.engine_options, cls):
            return spec.engine_options
        return cls.parse(spec.id, spec.engine, spec.options)


def _problem(engine: str, error: ErrorDetails) -> str:
    name = ".".join(str(part) for part in error["loc"]) or "options"
    if error["type"] == "missing":
        return f"the {engine} engine needs `{name}`"
    if error["type"] == "extra_forbidden":
        return f"the {engine} engine has no option `{name}`"
    reason = re.sub(r"^(Value|Assertion) error, ", "", error["msg"])
    return f"option `{name}`: {reason} (got {error['input']!r})"
