"""API keys and tasks.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("models", sa.JSON, nullable=True),
        sa.Column("credits", sa.Integer, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("ar", sa.String(16), nullable=True),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("batch_key", sa.String(400), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Integer, nullable=False),
        sa.Column("enqueued_at", sa.Float, nullable=False),
        sa.Column("run_after", sa.Float, nullable=False, server_default="0"),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
        sa.Column("progress", sa.Integer, nullable=True),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("result_key", sa.String(300), nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("purged_at", sa.Float, nullable=True),
    )
    op.create_index("ix_tasks_key_id", "tasks", ["key_id"])
    op.create_index("ix_tasks_queue", "tasks", ["status", "enqueued_at"])
    op.create_index("ix_tasks_batch", "tasks", ["status", "batch_key", "enqueued_at"])
    op.create_index("ix_tasks_lease", "tasks", ["status", "lease_expires_at"])
    op.create_index("ix_tasks_finished", "tasks", ["status", "finished_at"])


def downgrade() -> None:
    op.drop_table("tasks")
    op.drop_table("api_keys")
