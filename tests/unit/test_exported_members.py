"""The curated public surfaces, guarded as httpx guards its own (tests/test_exported_members.py):
`__all__` names exactly the public names a module binds, each of which exists, so that a new
public name is a decision and a removed one is noticed."""

from __future__ import annotations
import __future__

import importlib
from types import ModuleType

import pytest

CURATED = ["darkroom.client", "darkroom.testing"]


def public_names(module: ModuleType) -> set[str]:
    """Names a user reaches in the module: not private, not submodules, not `annotations`."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, ModuleType)
        and value is not __future__.annotations
    }


@pytest.mark.parametrize("name", CURATED)
def test_all_names_exactly_the_public_members_and_each_exists(name: str) -> None:
    module = importlib.import_module(name)
    missing = [member for member in module.__all__ if not hasattr(module, member)]
    assert missing == []
    assert len(module.__all__) == len(set(module.__all__)), "a name is listed twice"
    assert sorted(module.__all__) == sorted(public_names(module))
