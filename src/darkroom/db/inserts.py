"""Many rows into one table in one call, at about the driver's own cost.

SQLAlchemy's executemany builds an execution context and runs every column's bind processor
for every row, and with RETURNING (to read back what was inserted) it rewrites the statement
as a multi-row VALUES per batch: for the creates of a group commit (tasks/admission.py) that
cost 35-65 us a row, three times the driver's executemany (bench/api.py; issue 15). Here the
INSERT is compiled once per table, columns and dialect; on SQLite the rows go to the driver as
tuples, only the columns that need it converted (JSON, Money, booleans), in one call that still
runs inside the connection's transaction. Elsewhere SQLAlchemy's plain executemany is used
(asyncpg's own executemany already runs at the driver's speed). Nothing is read back: callers
insert values they already hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class _Prepared:
    sql: str
    columns: tuple[str, ...]
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]
    """(position, bind processor) of the columns that are converted."""

    def values(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        values = [row[name] for name in self.columns]
        for position, process in self.processors:
            values[position] = process(values[position])
        return tuple(values)


_prepared: dict[tuple[str, str, tuple[str, ...]], _Prepared] = {}


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Inserts `rows` (each with the same columns) in the connection's transaction."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), list(rows))
        return
    prepared = _prepare(table, tuple(rows[0]), conn.dialect)
    # Through SQLAlchemy still, for its transaction (the first statement begins it), but with
    # the statement and its parameters as the driver takes them.
    conn.exec_driver_sql(prepared.sql, [prepared.values(row) for row in rows])


def _prepare(table: sa.Table, columns: tuple[str, ...], dialect: sa.Dialect) -> _Prepared:
    key = (table.name, dialect.name, columns)
    prepared = _prepared.get(key)
    if prepared is None:
        compiled = table.insert().compile(dialect=dialect, column_keys=list(columns))
        order = tuple(compiled.positiontup or ())
        processors = []
        for position, name in enumerate(order):
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((position, process))
        prepared = _prepared[key] = _Prepared(compiled.string, order, tuple(processors))
    return prepared
