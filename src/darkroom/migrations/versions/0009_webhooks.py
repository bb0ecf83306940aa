"""Webhooks: a callback URL per task and per key, a signing secret per key, and the outbox.

A task's end is posted to its callback URL from `webhook_deliveries`, a row written in the
transaction that ends the task; each try adds a row to `webhook_attempts`. Keys made before
this revision get a secret of their own here, so every key can sign (`darkroom keys
webhook-secret` shows a new one to its owner).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import base64
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

keys = sa.table("api_keys", sa.column("id", sa.Integer), sa.column("webhook_secret", sa.String))


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("callback_url", sa.Text, nullable=True))
    op.add_column("api_keys", sa.Column("webhook_secret", sa.String(100), nullable=True))
    op.add_column("tasks", sa.Column("callback_url", sa.Text, nullable=True))
    op.create_table(
        "webhook_deliveries",
        sa.Column("task_id", sa.String(24), primary_key=True),
        sa.Column("key_id", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )
    op.create_index(
        "ix_webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"]
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(24), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("attempted_at", sa.Float, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("latency_ms", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index("ix_webhook_attempts_task_id", "webhook_attempts", ["task_id"])
    connection = op.get_bind()
    for (key_id,) in connection.execute(sa.select(keys.c.id)).all():
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        connection.execute(keys.update().where(keys.c.id == key_id).values(webhook_secret=secret))


def downgrade() -> None:
    op.drop_table("webhook_attempts")
    op.drop_table("webhook_deliveries")
    op.drop_column("tasks", "callback_url")
    op.drop_column("api_keys", "webhook_secret")
    op.drop_column("api_keys", "callback_url")
