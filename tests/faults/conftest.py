from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import fail_if_missing
from tests.support.services import (
    RestartablePostgres,
    RestartableS3Server,
    postgres_bindir,
    restartable_postgres_server,
    restartable_seaweedfs_server,
    weed_binary,
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the tiny model's pipeline is built, by the first worker that loads it."""
    return tmp_path_factory.mktemp("faults-models") / "tiny-sd"


@pytest.fixture(scope="module")
def restartable_postgres() -> Iterator[RestartablePostgres]:
    """A PostgreSQL cluster of this module's own: its tests stop and start it."""
    fail_if_missing(postgres_bindir)
    with restartable_postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def restartable_s3() -> Iterator[RestartableS3Server]:
    """A SeaweedFS S3 server of this module's own: its tests stop and start it."""
    fail_if_missing(weed_binary)
    with restartable_seaweedfs_server() as server:
        yield server
