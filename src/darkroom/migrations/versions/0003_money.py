"""Money: a balance and a credit limit per key, a cost per task; credits become balance.

A key's credits were tasks it could still create, one credit each, so credits N become a
balance of N with no credit limit (and NULL, unmetered, stays NULL). The tasks those keys
already created were charged one credit each: they cost 1, and the failed ones among them were
given it back already, so they are marked refunded and a later failure cannot refund them
again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from decimal import Decimal

import sqlalchemy as sa
from alembic import op

from darkroom.db.schema import Money

revision = "0003"
down_revision = "0002"

keys = sa.table(
    "api_keys", sa.column("id", sa.Integer), sa.column("credits"), sa.column("balance", Money())
)
tasks = sa.table(
    "tasks",
    sa.column("key_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("finished_at", sa.Float),
    sa.column("cost", Money()),
    sa.column("refunded_at", sa.Float),
)


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("balance", Money(), nullable=True))
    op.add_column(
        "api_keys", sa.Column("credit_limit", Money(), nullable=False, server_default="0")
    )
    op.add_column("tasks", sa.Column("cost", Money(), nullable=False, server_default="0"))
    op.add_column("tasks", sa.Column("refunded_at", sa.Float(), nullable=True))
    connection = op.get_bind()
    for key_id, credits in _metered_keys(keys.c.credits):
        # Through the Money type, so SQLite stores micro-units and PostgreSQL a NUMERIC.
        connection.execute(
            keys.update().where(keys.c.id == key_id).values(balance=Decimal(int(credits)))
        )
        connection.execute(tasks.update().where(tasks.c.key_id == key_id).values(cost=Decimal(1)))
    connection.execute(
        tasks.update()
        .where(tasks.c.status == "failed", tasks.c.cost > Decimal(0))
        .values(refunded_at=tasks.c.finished_at)
    )
    op.drop_column("api_keys", "credits")


def downgrade() -> None:
    op.add_column("api_keys", sa.Column("credits", sa.Integer(), nullable=True))
    connection = op.get_bind()
    for key_id, balance in _metered_keys(keys.c.balance):
        # Whole credits only: a fraction left of a balance is lost on the way down.
        credits = max(int(balance), 0)
        connection.execute(keys.update().where(keys.c.id == key_id).values(credits=credits))
    op.drop_column("tasks", "refunded_at")
    op.drop_column("tasks", "cost")
    op.drop_column("api_keys", "credit_limit")
    op.drop_column("api_keys", "balance")


def _metered_keys(amount: sa.ColumnClause) -> list[sa.Row]:
    """(id, amount) of every key whose amount (credits or balance) is set."""
    query = sa.select(keys.c.id, amount).where(amount.is_not(None))
    return list(op.get_bind().execute(query).all())
