from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.support.backends import BACKENDS, POSTGRES_S3, SQLITE_LOCAL, Backend
from tests.support.catalogs import CONFIGS
from tests.support.servers import Darkroom
from tests.support.services import (
    MissingService,
    PostgresServer,
    S3Server,
    postgres_bindir,
    postgres_server,
    seaweedfs_server,
    weed_binary,
)

# Modules whose tests using the shared `darkroom` server run once per backend.
ON_EVERY_BACKEND = {
    "tests.e2e.test_media_api",
    "tests.e2e.test_errors",
    "tests.integration.test_storage",
    "tests.integration.test_postgres",
}
# Tests that check the local storage's own link format; S3 links are checked in
# tests/integration/test_storage_conformance.py.
LOCAL_LINKS_ONLY = {
    "tests.e2e.test_media_api::test_task_reaches_done_with_a_link_that_a_plain_get_downloads",
    "tests.e2e.test_media_api::test_a_tampered_link_is_refused",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "darkroom" not in metafunc.fixturenames or metafunc.module.__name__ not in ON_EVERY_BACKEND:
        return
    local_only = f"{metafunc.module.__name__}::{metafunc.function.__name__}" in LOCAL_LINKS_ONLY
    backends = [SQLITE_LOCAL] if local_only else BACKENDS
    metafunc.parametrize("darkroom", backends, indirect=True, scope="session")


# -- real servers beside Darkroom, started on first use ---------------------------------------


@pytest.fixture(scope="session")
def postgres(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster on a loopback port."""
    fail_if_missing(postgres_bindir)
    with postgres_server() as server:
        yield server
        _stop_shared_servers(request)  # they use it: stop them first


@pytest.fixture(scope="session")
def s3(request: pytest.FixtureRequest) -> Iterator[S3Server]:
    """A private SeaweedFS S3 server on loopback ports."""
    fail_if_missing(weed_binary)
    with seaweedfs_server() as server:
        yield server
        _stop_shared_servers(request)


def fail_if_missing(find: Callable[[], object]) -> None:
    """CI installs the servers, so a missing one fails the tests that need it (no skip)."""
    try:
        find()
    except MissingService as exc:
        missing = str(exc)
    else:
        return
    pytest.fail(missing, pytrace=False)


def backend_named(request: pytest.FixtureRequest, name: str) -> Backend:
    """PostgreSQL and S3 start only when a test asks for the backend that uses them."""
    if name == POSTGRES_S3:
        return Backend(name, request.getfixturevalue("postgres"), request.getfixturevalue("s3"))
    if name == SQLITE_LOCAL:
        return Backend(name)
    raise ValueError(f"no backend {name!r}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each test that takes it runs once per backend, on a Darkroom installation of its own."""
    return backend_named(request, request.param)


# -- the shared server ----------------------------------------------------------------------------


class SharedServers:
    """One running server per backend for the whole session (with one key each), kept across
    the session-scoped `darkroom` fixture's switches between backends."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.servers: dict[str, Darkroom] = {}
        self.keys: dict[str, str] = {}
        self.stack = ExitStack()

    def server(self, request: pytest.FixtureRequest, name: str) -> Darkroom:
        if name not in self.servers:
            backend = backend_named(request, name)
            data_dir = self.tmp.mktemp(f"darkroom-{name}")
            self.servers[name] = self.stack.enter_context(
                backend.running(data_dir, CONFIGS / "test.toml")
            )
        return self.servers[name]

    def key(self, darkroom: Darkroom) -> str:
        name = next(n for n, s in self.servers.items() if s is darkroom)
        if name not in self.keys:
            self.keys[name] = darkroom.create_key("--name", "tests")
        return self.keys[name]


SHARED = pytest.StashKey[SharedServers]()


@pytest.fixture(scope="session")
def shared_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedServers]:
    shared = request.session.stash[SHARED] = SharedServers(tmp_path_factory)
    with shared.stack:
        yield shared


def _stop_shared_servers(request: pytest.FixtureRequest) -> None:
    """The database and S3 servers may stop before the shared servers' fixture does."""
    shared = request.session.stash.get(SHARED, None)
    if shared is not None:
        shared.stack.close()


@pytest.fixture(scope="session")
def darkroom(request: pytest.FixtureRequest, shared_servers: SharedServers) -> Darkroom:
    """The shared server: the test catalog, one in-process worker; SQLite and local storage
    unless the module runs on every backend (see ON_EVERY_BACKEND)."""
    return shared_servers.server(request, getattr(request, "param", SQLITE_LOCAL))


@pytest.fixture(scope="session")
def api_key(darkroom: Darkroom, shared_servers: SharedServers) -> str:
    return shared_servers.key(darkroom)


@pytest.fixture
def client(darkroom: Darkroom, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=darkroom.base_url, headers={"Authorization": api_key}, timeout=30
    ) as http:
        yield http
