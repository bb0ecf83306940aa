"""An index for listing a key's tasks newest first (GET /v1/media/tasks).

The listing pages by keyset, `WHERE key_id = ? AND (enqueued_at, id) < cursor ORDER BY
enqueued_at DESC, id DESC LIMIT n`. With only ix_tasks_key_id the database reads and sorts every
task of the key for each page; with (key_id, enqueued_at, id) it reads the page's rows straight
off the index, however many tasks the key has made.

Revision ID: 0004
Revises: 0002 (0003 once the money migration is merged: set down_revision to "0003" then)
Create Date: 2026-12-01
"""

from alembic import op

revision = "0004"
down_revision = "0002"


def upgrade() -> None:
    op.create_index("ix_tasks_by_key", "tasks", ["key_id", "enqueued_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_tasks_by_key", table_name="tasks")
