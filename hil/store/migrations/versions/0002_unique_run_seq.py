"""``(run_id, seq)`` unique on ``readings`` and ``pulses``.

docs/schema.md always called it a run's position; 0.1.0 only indexed it, so two writers on one run
(two ``rram-hil resume`` at once) could store a cycle twice. The index of each table becomes a
unique index of the same name and columns (no column, table or view changes). When a database
already holds a doubled ``(run_id, seq)`` the upgrade stops before changing anything and says which.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:40:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from hil.store.schema import MigrationBlocked

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = {"readings": "ix_readings_run_seq", "pulses": "ix_pulses_run_seq"}


def _refuse_duplicates() -> None:
    conn = op.get_bind()
    for table in TABLES:
        doubled = conn.execute(
            sa.text(
                f"SELECT run_id, seq, count(*) AS n FROM {table} GROUP BY run_id, seq HAVING count(*) > 1 "
                "ORDER BY run_id, seq"
            )
        ).all()
        if doubled:
            first = doubled[0]
            runs = sorted({int(r.run_id) for r in doubled})
            shown = ", ".join(str(r) for r in runs[:5]) + (", ..." if len(runs) > 5 else "")
            raise MigrationBlocked(
                f"db upgrade: {len(doubled)} (run_id, seq) pairs of '{table}' occur more than once "
                f"(run {first.run_id} has seq {first.seq} {first.n} times; runs {shown}), so (run_id, seq) "
                "cannot be made unique; nothing was changed"
            )


def upgrade() -> None:
    _refuse_duplicates()  # before any change: a refused upgrade leaves the database as it was
    for table, index in TABLES.items():
        op.drop_index(index, table_name=table)
        op.create_index(index, table, ["run_id", "seq"], unique=True)


def downgrade() -> None:
    for table, index in TABLES.items():
        op.drop_index(index, table_name=table)
        op.create_index(index, table, ["run_id", "seq"], unique=False)
