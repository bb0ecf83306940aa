"""The leaders table, with the maintenance service's row.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    leaders = op.create_table(
        "leaders",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("expires_at", sa.Float, nullable=False, server_default="0"),
    )
    op.bulk_insert(leaders, [{"name": "maintenance", "owner": None, "expires_at": 0.0}])


def downgrade() -> None:
    op.drop_table("leaders")
