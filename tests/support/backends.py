"""The two ways to run Darkroom that tests cover: one machine (SQLite and local files) and many
machines (PostgreSQL and S3). A backend turns into the settings of a fresh installation: its own
database on the shared PostgreSQL server, its own bucket on the shared S3 server."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import Darkroom
from tests.support.services import PostgresServer, S3Server

SQLITE_LOCAL = "sqlite-local"
POSTGRES_S3 = "postgres-s3"
BACKENDS = [SQLITE_LOCAL, POSTGRES_S3]


@dataclass
class Backend:
    name: str
    postgres: PostgresServer | None = None
    s3: S3Server | None = None

    def installation(self, data_dir: Path, config: Path | None = None, **settings: Any) -> Darkroom:
        """A Darkroom with this backend's settings, not started yet."""
        darkroom = Darkroom(data_dir, config, **settings)
        if self.postgres is not None:
            darkroom.env["DARKROOM_DATABASE_URL"] = self.postgres.new_database()
        if self.s3 is not None:
            darkroom.env.update(self.s3.env())
            darkroom.env["DARKROOM_S3_BUCKET"] = f"darkroom-{secrets.token_hex(4)}"
        return darkroom

    @contextmanager
    def running(
        self, data_dir: Path, config: Path | None = None, *serve_args: str, **settings: Any
    ) -> Iterator[Darkroom]:
        """Like `servers.running`, on this backend."""
        darkroom = self.installation(data_dir, config, **settings)
        try:
            darkroom.start_server(*serve_args)
            yield darkroom
        finally:
            darkroom.stop()
