"""Fair share between keys: a weight, a priority, a virtual time, the start of its last
turn and the time it was served per key, and an index to find a key's oldest waiting task.

A claim serves the key with the highest priority and, among those, the smallest virtual time,
then advances that key's virtual time by the tasks it took divided by its weight (tasks/fair.py).
Existing keys start even (weight 1, priority 0, virtual time 0).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("weight", sa.Float(), nullable=False, server_default="1"))
    op.add_column(
        "api_keys", sa.Column("priority", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("api_keys", sa.Column("vtime", sa.Float(), nullable=False, server_default="0"))
    op.add_column("api_keys", sa.Column("vstart", sa.Float(), nullable=False, server_default="0"))
    op.add_column("api_keys", sa.Column("served_at", sa.Float(), nullable=True))
    op.create_index("ix_api_keys_served_at", "api_keys", ["served_at"])
    op.create_index("ix_tasks_key_queue", "tasks", ["key_id", "status", "enqueued_at"])


def downgrade() -> None:
    op.drop_index("ix_tasks_key_queue", table_name="tasks")
    op.drop_index("ix_api_keys_served_at", table_name="api_keys")
    for column in ("served_at", "vstart", "vtime", "priority", "weight"):
        op.drop_column("api_keys", column)
