"""Runs the Alembic migrations shipped inside the package, on the application's own engine."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from darkroom.db.database import Database

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Any constant: API nodes and workers starting together take turns at migrating PostgreSQL.
_PG_MIGRATION_LOCK = 0x6461726B


async def migrate(db: Database) -> None:
    async with db.write() as conn:
        if not db.is_sqlite:
            await conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})"))
        await conn.run_sync(_upgrade_to_head)


def _upgrade_to_head(connection: sa.Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
