"""``rram-hil db copy SRC DST``: a bench's runs into another database (the lab's server),
idempotently.

**Identity.** A run is the same run in both databases when its ``(hostname, pid, started_at,
protocol)`` match: the machine and process that started it and the moment it started (UTC, to
the microsecond), which no two runs share. The destination gives the copy its own id (it has
runs of other benches); the report says which id became which.

**Idempotent.** A run already in the destination, unchanged (same status, end, resumes and
numbers of readings and pulses), is skipped: copying twice doubles nothing. One that changed
since it was copied (interrupted then, resumed and completed since) is replaced, in one
transaction. A run still ``running`` is not copied (copy it when it has ended).

**All of a run or none of it.** Each run is copied in one transaction of the destination: its
row, readings and pulses (through :meth:`Store.iter_readings` / :meth:`Store.add_readings`, in
chunks, whatever their layout in the tables), events, checkpoint, artifacts and training
tables. Both databases must be at this software's schema version (an older one: ``rram-hil db
upgrade`` first); the source is only read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Table, delete, insert, select

from hil.errors import ConfigError
from hil.store.database import Store, database_url
from hil.store.models import Base, Run
from hil.store.urls import shown

#: the tables copied row by row (a run's rows besides its readings and pulses, which go through
#: the store's own reading API); ``run_id`` is replaced by the run's id in the destination
ROW_TABLES = (
    "events", "checkpoints", "artifacts", "epochs", "epoch_arrays", "snapshots", "tracked_synapses",
    "weight_errors",
)  # fmt: skip
#: columns of ``runs`` that say whether a copy is still up to date
_STATE = ("status", "ended_at", "resumes", "error")
CHUNK_ROWS = 100_000


@dataclass
class CopyReport:
    """What :func:`copy_database` did: ``copied`` and ``updated`` map source ids to destination
    ids; ``skipped`` (already there, unchanged) likewise; ``running`` lists the runs left out."""

    src: str
    dst: str
    copied: dict[int, int] = field(default_factory=dict)
    updated: dict[int, int] = field(default_factory=dict)
    skipped: dict[int, int] = field(default_factory=dict)
    running: list[int] = field(default_factory=list)
    readings: int = 0
    pulses: int = 0


def _key(row: Any) -> tuple[Any, ...]:
    started = row.started_at
    if started.tzinfo is not None:
        started = started.astimezone(UTC).replace(tzinfo=None)
    return (row.hostname, row.pid, started, row.protocol)


def _aware(value: Any) -> Any:
    """A stored time as an aware UTC datetime, whichever database it came from (SQLite: naive UTC;
    PostgreSQL: aware, in the session's time zone), so that any database stores the same instant;
    other values unchanged."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _state(store: Store, row: Any) -> tuple[Any, ...]:
    ended = row.ended_at
    if ended is not None and ended.tzinfo is not None:
        ended = ended.astimezone(UTC).replace(tzinfo=None)
    return (row.status, ended, row.resumes, row.error, store.count_readings(row.id), store.count_pulses(row.id))


def _plain_columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A chunk of readings or pulses as column lists the store takes on every database: missing
    values as None, whole numbers of integer columns (``float64`` where the run has a null) as int."""
    columns: dict[str, list[Any]] = {}
    for name in frame.columns:
        values = frame[name].astype(object).tolist()
        whole = frame[name].dtype.kind == "f" and name in _INTEGER_COLUMNS
        columns[name] = [
            None if v is None or (isinstance(v, float) and v != v) else (int(v) if whole else v) for v in values
        ]
    return columns


_INTEGER_COLUMNS = frozenset({"run_id", "seq", "row", "col", "cycle", "pulse", "step", "count"})


def _rows(src: Store, table: Table, run_id: int) -> Iterator[dict[str, Any]]:
    order = list(table.primary_key.columns)
    stmt = select(table).where(table.c.run_id == run_id).order_by(*order)
    for row in src.conn.execute(stmt).mappings():
        yield dict(row)


def _copy_run(src: Store, dst: Store, row: Any, report: CopyReport) -> int:
    """Copy one run inside the destination's current transaction; returns its new id."""
    runs = Run.__table__
    values = {c.name: _aware(row._mapping[c.name]) for c in runs.columns if c.name != "id"}
    new_id = int(dst.conn.execute(insert(runs).values(**values).returning(runs.c.id)).scalar_one())
    for chunk in src.iter_readings(row.id, chunk_rows=CHUNK_ROWS):
        chunk = chunk.assign(run_id=new_id)
        report.readings += dst.add_readings(_plain_columns(chunk))
    for chunk in src.iter_pulses(row.id, chunk_rows=CHUNK_ROWS):
        chunk = chunk.assign(run_id=new_id)
        report.pulses += dst.add_pulses(_plain_columns(chunk))
    for name in ROW_TABLES:
        table = Base.metadata.tables[name]
        has_id = "id" in table.c
        batch = []
        for r in _rows(src, table, row.id):
            if has_id:
                r.pop("id")
            r["run_id"] = new_id
            batch.append({k: _aware(v) for k, v in r.items()})
        if batch:
            dst.conn.execute(insert(table), batch)
    return new_id


def copy_database(src: str | Path, dst: str | Path) -> CopyReport:
    """Copy every run of ``src`` that ``dst`` does not have (see the module's docstring).

    Raises:
        ConfigError: ``src`` does not exist, ``src`` and ``dst`` are one database, or either is
            at another schema version (one line each).
    """
    if database_url(src) == database_url(dst) or (
        "://" not in str(src) and "://" not in str(dst) and Path(src).resolve() == Path(dst).resolve()
    ):
        raise ConfigError(f"db copy: '{shown(src)}' and '{shown(dst)}' are the same database")
    report = CopyReport(shown(src), shown(dst))
    with Store(src, reap_stale=False, must_exist=True) as source, Store(dst) as target:
        runs = Run.__table__
        have: dict[tuple[Any, ...], Any] = {}
        for r in target.conn.execute(select(runs)):
            have[_key(r)] = r
        target.conn.rollback()
        for r in source.conn.execute(select(runs).order_by(runs.c.id)).all():
            if r.status == "running":
                report.running.append(r.id)
                continue
            there = have.get(_key(r))
            if there is not None and _state(source, r) == _state(target, there):
                report.skipped[r.id] = there.id
                continue
            with target.batch():
                if there is not None:  # changed since it was copied: replaced as a whole
                    # (every table of a run's rows refers to it ON DELETE CASCADE)
                    target.conn.execute(delete(runs).where(runs.c.id == there.id))
                new_id = _copy_run(source, target, r, report)
            (report.updated if there is not None else report.copied)[r.id] = new_id
    return report
