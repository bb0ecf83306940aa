"""The tables. The task table is also the queue: its status and lease columns are what
workers claim on, so the indexes below follow the claim and sweep queries. The leaders table
holds one row per elected service (db/leader.py). The webhook tables are the outbox of task
ends (webhooks/outbox.py): a delivery row is written in the transaction that ends its task, and
each try at sending it adds an attempt row.

Amounts of money are `Money`: NUMERIC on PostgreSQL; on SQLite, which has no exact decimal
type and would do its arithmetic in binary floats, a whole number of micro-units. Either way
the database adds and compares exactly, and Python sees a `Decimal` (money.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from darkroom.money import PRECISION, SCALE


class Money(sa.TypeDecorator[Decimal]):
    """An exact amount: NUMERIC(15, 6), or micro-units in an integer on SQLite."""

    impl = sa.Numeric(PRECISION, SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.Numeric(PRECISION, SCALE))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        amount = Decimal(value)
        return int(amount.scaleb(SCALE)) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-SCALE)
        return Decimal(value)


metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    # None: every model of the catalog; otherwise the list of model ids this key may use.
    sa.Column("models", sa.JSON, nullable=True),
    # None: unmetered; otherwise what it may still spend, down to -credit_limit.
    sa.Column("balance", Money, nullable=True),
    sa.Column("credit_limit", Money, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    # An operator's key: it may call /v1/admin/ (the console), besides the media API.
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    # Fair share (tasks/fair.py): keys of a higher priority are served first; among equals,
    # the key with the smallest virtual time, which grows by 1/weight for each task claimed.
    sa.Column("weight", sa.Float, nullable=False, server_default="1"),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("vtime", sa.Float, nullable=False, server_default="0"),
    sa.Column("vstart", sa.Float, nullable=False, server_default="0"),
    sa.Column("served_at", sa.Float, nullable=True, index=True),
    # Limits (keys/limits.py); NULL: the server's default.
    sa.Column("rate", sa.Float, nullable=True),
    sa.Column("max_waiting", sa.Integer, nullable=True),
    sa.Column("max_running", sa.Integer, nullable=True),
    sa.Column("daily_spend", Money, nullable=True),
    # Webhooks: the URL a task's end is posted to when its create names none, and the
    # `whsec_` secret that signs them (kept as is: signing needs it).
    sa.Column("callback_url", sa.Text, nullable=True),
    sa.Column("webhook_secret", sa.String(100), nullable=True),
)

# A token bucket per rate-limited key (keys/rate.py), shared by every API node.
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("tokens", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("id", sa.String(24), primary_key=True),
    sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), nullable=False, index=True),
    sa.Column("model", sa.String(200), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("ar", sa.String(16), nullable=True),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    # Tasks with equal batch keys can share one engine call (same model, size, steps, ...).
    sa.Column("batch_key", sa.String(400), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Integer, nullable=False),
    sa.Column("enqueued_at", sa.Float, nullable=False),
    # A task given back after an engine error waits until then, so retries back off.
    sa.Column("run_after", sa.Float, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("attempt", sa.Integer, nullable=False, default=0),
    sa.Column("max_attempts", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_expires_at", sa.Float, nullable=True),
    sa.Column("progress", sa.Integer, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("result_key", sa.String(300), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("purged_at", sa.Float, nullable=True),
    # What creating it charged (the model's price), and when that was given back (a task that
    # failed or was canceled): refunded once, where refunded_at is still NULL.
    sa.Column("cost", Money, nullable=False, server_default="0"),
    sa.Column("refunded_at", sa.Float, nullable=True),
    # Where the task's end is posted (its create's callback_url, or its key's default).
    sa.Column("callback_url", sa.Text, nullable=True),
    # What its model makes (image, video, audio), and every file it stored ({key, duration,
    # title}: an audio model's tracks); result_key stays the first file's key.
    sa.Column("kind", sa.String(16), nullable=False, server_default="image"),
    sa.Column("result_files", sa.JSON, nullable=True),
    sa.Index("ix_tasks_queue", "status", "enqueued_at"),
    sa.Index("ix_tasks_batch", "status", "batch_key", "enqueued_at"),
    sa.Index("ix_tasks_lease", "status", "lease_expires_at"),
    sa.Index("ix_tasks_finished", "status", "finished_at"),
    # A key's tasks newest first, paged by keyset (GET /v1/media/tasks).
    sa.Index("ix_tasks_by_key", "key_id", "enqueued_at", "id"),
    # A key's oldest waiting task, for the fair claim.
    sa.Index("ix_tasks_key_queue", "key_id", "status", "enqueued_at"),
)

# Idempotent creates: a key's Idempotency-Key names one task for a day (tasks/admission.py).
idempotency = sa.Table(
    "idempotency",
    metadata,
    sa.Column("key_id", sa.Integer, sa.ForeignKey("api_keys.id"), primary_key=True),
    sa.Column("idempotency_key", sa.String(255), primary_key=True),
    # SHA-256 of the request's body: the same key with another body is refused (code 3).
    sa.Column("body_hash", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(24), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
)

leaders = sa.Table(
    "leaders",
    metadata,
    # The elected service: "maintenance" (a row for it is made by the migration).
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=True),
    # Unix seconds until which the owner leads; 0: nobody does.
    sa.Column("expires_at", sa.Float, nullable=False, server_default="0"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    # One delivery per task: a task ends once (the fence in tasks/store.py's `_finish`).
    sa.Column("task_id", sa.String(24), primary_key=True),
    sa.Column("key_id", sa.Integer, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    # pending (to send, or being sent), delivered, failed (given up)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", sa.Float, nullable=False),
    # When it may be tried next; while a sender holds it, when that sender's lease runs out.
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.String(24), nullable=False, index=True),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("attempted_at", sa.Float, nullable=False),
    # None: no answer (refused, unreachable, timed out): `error` says which.
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)
