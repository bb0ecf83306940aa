"""Media kinds: a task's kind (image, video, audio) and every file it stored.

An audio model answers with several tracks, each its own file with a duration and a title;
`result_files` lists them ({key, duration, title}), while `result_key` stays the first file's
key, so everything that reads one result (generate, the OpenAI routes) is unchanged. Tasks made
before this revision are images.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    op.add_column("tasks", sa.Column("kind", sa.String(16), nullable=False, server_default="image"))
    op.add_column("tasks", sa.Column("result_files", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("result_files")
        batch.drop_column("kind")
