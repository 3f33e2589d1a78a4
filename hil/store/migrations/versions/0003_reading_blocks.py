"""Readings and pulse records in blocks; ``readings`` and ``pulses`` become views.

The narrow tables ``readings`` and ``pulses`` (one row per reading) are converted to
``reading_blocks`` and ``pulse_blocks`` (one row per batch of consecutive ``seq`` with the same
run, ``kind``/``purpose`` and ``array``; the readings row-major JSON, see ``hil.store.blocks``):
every row is kept with its values and ``seq``, in ``seq`` order, read in chunks (memory bounded
whatever the database's size). The narrow tables are dropped and views of the same names and
columns (their surrogate ``id`` aside) take their place, so plain SQL still finds one row per
reading. ``(run_id, seq)`` stays unique: a unique index on ``(run_id, seq_first)`` and a trigger
refusing overlapping seq ranges (SQLite, PostgreSQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:50:00

"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from hil.store import blocks

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: old rows read (and blocks written) per round trip of the conversion
CHUNK = 65_536


def _block_table(layout: blocks.Layout, integer: set[str]) -> None:
    label = sa.Column(layout.label, sa.String(length=32), nullable=False)
    op.create_table(
        layout.table,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("seq_first", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        label,
        sa.Column("array", sa.String(length=64), nullable=False),
        *(
            sa.Column(name, sa.Integer() if name in integer else sa.Float(), nullable=True)
            for name in layout.numeric
        ),
        sa.Column("has_null", sa.Integer(), nullable=False),
        sa.Column("has_value", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(f"ix_{layout.table}_run_seq", layout.table, ["run_id", "seq_first"], unique=True)


def _convert(conn: sa.Connection, layout: blocks.Layout) -> None:
    """Every row of the narrow table ``layout.view``, in (run_id, seq) order, into blocks."""
    names = layout.columns
    quoted = ", ".join(f'"{c}"' for c in names)
    select = sa.text(f'SELECT {quoted} FROM "{layout.view}" ORDER BY run_id, seq')
    result = conn.execute(select.execution_options(stream_results=True))  # server-side where it can
    compiled = sa.insert(sa.table(layout.table, *(sa.column(c) for c in layout.block_columns)))
    while True:
        chunk = result.fetchmany(CHUNK)
        if not chunk:
            break
        columns: dict[str, Any] = {name: [row[i] for row in chunk] for i, name in enumerate(names)}
        rows = blocks.encode(layout, columns)
        conn.execute(compiled, [dict(zip(layout.block_columns, row, strict=True)) for row in rows])


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    present = set(sa.inspect(conn).get_table_names())
    for layout in blocks.LAYOUTS:
        _block_table(layout, set(layout.integer))
        if layout.view in present:
            _convert(conn, layout)
            op.drop_index(f"ix_{layout.view}_run_seq", table_name=layout.view)
            op.drop_table(layout.view)
    blocks.create_views_and_triggers(conn.exec_driver_sql, dialect)


def downgrade() -> None:
    """Back to narrow tables (schema 0002), every reading kept, read through the views."""
    conn = op.get_bind()
    dialect = conn.dialect.name
    for layout in blocks.LAYOUTS:
        narrow = f"{layout.view}_0002"
        ints = set(layout.integer)
        op.create_table(
            narrow,
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("run_id", sa.Integer(), nullable=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column(layout.label, sa.String(length=32), nullable=False),
            sa.Column("array", sa.String(length=64), nullable=False),
            *(
                sa.Column(
                    name,
                    sa.Integer() if name in ints else sa.Float(),
                    nullable=name not in layout.required,
                )
                for name in layout.numeric
            ),
            sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        quoted = ", ".join(f'"{c}"' for c in layout.columns)
        conn.exec_driver_sql(
            f'INSERT INTO "{narrow}" ({quoted}) SELECT {quoted} FROM "{layout.view}" ORDER BY run_id, seq'
        )
        for statement in blocks.drop_ddl(layout, dialect):
            conn.exec_driver_sql(statement)
        op.drop_index(f"ix_{layout.table}_run_seq", table_name=layout.table)
        op.drop_table(layout.table)
        op.rename_table(narrow, layout.view)
        op.create_index(f"ix_{layout.view}_run_seq", layout.view, ["run_id", "seq"], unique=True)
