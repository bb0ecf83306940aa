from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.servers import Darkroom, running

CONFIGS = Path(__file__).parent / "configs"


@pytest.fixture(scope="session")
def darkroom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Darkroom]:
    """The shared server: SQLite, local storage, one in-process worker, the test catalog."""
    with running(tmp_path_factory.mktemp("darkroom"), CONFIGS / "test.toml") as server:
        yield server


@pytest.fixture(scope="session")
def api_key(darkroom: Darkroom) -> str:
    return darkroom.create_key("--name", "tests")


@pytest.fixture
def client(darkroom: Darkroom, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=darkroom.base_url, headers={"Authorization": api_key}, timeout=30
    ) as http:
        yield http
