"""Limits per key: requests per second, tasks waiting, tasks running, spend per day (NULL: the
server's default), and the token buckets of the request rate (keys/limits.py, keys/rate.py).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from darkroom.db.schema import Money

revision = "0007"
down_revision = "0006"

COLUMNS = ("rate", "max_waiting", "max_running", "daily_spend")


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("rate", sa.Float(), nullable=True))
    op.add_column("api_keys", sa.Column("max_waiting", sa.Integer(), nullable=True))
    op.add_column("api_keys", sa.Column("max_running", sa.Integer(), nullable=True))
    op.add_column("api_keys", sa.Column("daily_spend", Money(), nullable=True))
    op.create_table(
        "rate_buckets",
        sa.Column("key_id", sa.Integer(), sa.ForeignKey("api_keys.id"), primary_key=True),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
    for column in reversed(COLUMNS):
        op.drop_column("api_keys", column)
