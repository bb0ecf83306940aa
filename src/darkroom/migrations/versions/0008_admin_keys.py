"""Operator keys: `api_keys.admin`, true for a key made with `darkroom keys create --admin`,
which may call the console's endpoints under /v1/admin/. Every existing key stays a plain one.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.add_column(
        "api_keys", sa.Column("admin", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35 and later have it), as 0003 does: a batch copy of the
    # table would break the tasks' foreign keys on SQLite.
    op.drop_column("api_keys", "admin")
