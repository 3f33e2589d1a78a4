"""The store: every run, setting, pulse and reading, committed as it is taken.

SQLite by default (WAL journal, ``synchronous=NORMAL``, foreign keys on), any SQLAlchemy URL
otherwise. A committed transaction survives the writing process being killed at any moment
(SIGKILL included); a run left ``running`` by a process that no longer exists is marked
``interrupted`` the next time the store is opened.

Bulk inserts bypass the ORM: the insert statement is compiled once for the database's dialect
and rows go straight to the driver's ``executemany``. That keeps logging above 100,000
readings/s while staying portable.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, event, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hil import __version__
from hil.errors import ConfigError
from hil.store.faults import StoreFault, cause, describe, is_locked, read_only_fault
from hil.store.models import (
    RUN_STATUSES,
    Artifact,
    Base,
    Checkpoint,
    Event,
    PulseRecord,
    Reading,
    Run,
    utcnow,
)
from hil.store.schema import HEAD, SchemaState, Upgrade, check, ensure_schema, read_state, shown_db, upgrade
from hil.store.urls import database_url, mask_text, mask_values

log = logging.getLogger("hil.store")

#: SQLite's busy timeout (how long a write waits for another program's lock) unless the URL
#: gives one (``sqlite:///runs.sqlite?timeout=2``, in seconds)
BUSY_TIMEOUT_S = 10.0
#: how long the end of a run (its error event, its status) keeps trying to reach a database
#: that another program holds locked, before giving up
RECORD_TIMEOUT_S = 300.0
#: the events written as a run ends (by the engine), before its final status
END_EVENTS = frozenset({"error", "safe-state"})

DEFAULT_DB = "rram-hil.sqlite"

READING_COLUMNS = (
    "run_id", "seq", "kind", "array", "row", "col", "voltage_V", "current_A", "conductance_S", "t_s",
    "cycle", "pulse", "step",
)  # fmt: skip
PULSE_COLUMNS = (
    "run_id", "seq", "purpose", "array", "row", "col", "amplitude_V", "width_s", "count", "t_s",
    "cycle", "pulse", "step",
)  # fmt: skip


def database_exists(db: str | Path) -> bool:
    """Whether ``db`` names a database that is already there: an SQLite file that exists, or
    any server URL (a server database is created by its administrator, not by this program)."""
    url = make_url(database_url(db))
    if url.get_backend_name() != "sqlite":
        return True
    name = url.database or ""
    return bool(name) and name != ":memory:" and Path(name).expanduser().exists()


def _check_exists(db: str | Path, hint: str = "") -> None:
    """Raise :class:`ConfigError` unless ``db`` names an existing database (see
    :func:`database_exists`) that is not a directory; ``hint`` ends the "does not exist" line."""
    if not database_exists(db):
        raise ConfigError(f"db: '{shown_db(db)}' does not exist{hint}")
    url = make_url(database_url(db))
    if url.get_backend_name() == "sqlite" and Path(url.database or "").expanduser().is_dir():
        raise ConfigError(f"db: '{shown_db(db)}' is a directory, not a database file")


def validation_store(db: str | Path) -> Store:
    """The store that checks a run's references (``preflight_store``) before anything is
    written: ``db`` itself when it exists, else an empty in-memory database (nothing to find in
    it, and no file is created for a run that is refused)."""
    return Store(db) if database_exists(db) else Store("sqlite://")


@dataclass(frozen=True)
class DatabaseInfo:
    """What ``rram-hil db info`` shows: the schema version found (None: 0.1.0, no version) and the
    head this software writes, the numbers of runs and readings, and the size in bytes (None where
    the database does not say)."""

    db: str
    version: str | None
    head: str
    runs: int
    readings: int
    size_bytes: int | None

    @property
    def up_to_date(self) -> bool:
        return self.version == self.head


def _existing_engine(db: str | Path) -> Engine:
    """An engine on a database that must already exist (nothing is created; no pragma is set)."""
    _check_exists(db)
    return create_engine(database_url(db))


@contextmanager
def _faults(db: str | Path, unchanged: bool = True) -> Iterator[None]:
    """Database faults inside the block become a one-line :class:`StoreFault`."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreFault(describe(exc, db, unchanged=unchanged)) from None


def database_info(db: str | Path) -> DatabaseInfo:
    """Schema version, runs, readings and size of an existing database, whatever its version
    (reads only: an old or newer database is described, not refused)."""
    engine = _existing_engine(db)
    try:
        with _faults(db), engine.connect() as conn:
            state = read_state(conn)
            if state.tables and not state.ours:
                check(state, db)
            runs = readings = 0
            if "runs" in state.tables:
                runs = int(conn.execute(select(func.count()).select_from(Run.__table__)).scalar() or 0)
            if "readings" in state.tables:
                readings = int(
                    conn.execute(select(func.count()).select_from(Reading.__table__)).scalar() or 0
                )
            size: int | None = None
            if engine.dialect.name == "sqlite":
                name = engine.url.database or ""
                files = [Path(name), Path(name + "-wal")] if name and name != ":memory:" else []
                size = sum(f.stat().st_size for f in files if f.exists())
            elif engine.dialect.name == "postgresql":
                size = int(conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0)
    finally:
        engine.dispose()
    return DatabaseInfo(shown_db(db), state.version, HEAD, runs, readings, size)


def upgrade_database(db: str | Path) -> Upgrade:
    """Migrate an existing database to the head schema version (``rram-hil db upgrade``): one
    transaction, every row kept, or nothing changed (see :func:`hil.store.schema.upgrade`)."""
    engine = _existing_engine(db)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        with _faults(db):
            return upgrade(engine, db)
    finally:
        engine.dispose()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunClaimed(ConfigError):
    """Another process owns the run (or it is no longer claimable): refused in one line."""


@dataclass(frozen=True)
class RunInfo:
    """A run's row, as plain Python values."""

    id: int
    protocol: str
    parameters: dict[str, Any]
    station: dict[str, Any]
    station_name: str
    backend: str
    backend_info: dict[str, Any]
    seed: int | None
    package_version: str
    started_at: datetime
    ended_at: datetime | None
    status: str
    error: str | None
    resumes: int


class Store:
    """Access to one database. Safe to keep open for a whole session; one writer at a time.

    Args:
        db: a file path or a SQLAlchemy URL (default ``./rram-hil.sqlite``).
        reap_stale: mark runs left ``running`` by dead processes of this host ``interrupted``.
    """

    def __init__(self, db: str | Path = DEFAULT_DB, reap_stale: bool = True, must_exist: bool = False) -> None:
        """Open (or, unless ``must_exist``, create) the database ``db``: a file path or a URL.

        Raises:
            ConfigError: ``must_exist`` and there is no such database (commands that only read
                never create one: a mistyped ``--db`` is an error, not an empty database), a
                directory given as a file, a missing folder, or a database this version cannot use.
        """
        if must_exist:
            _check_exists(db, " (this command reads a database and creates none; check --db)")
        real = database_url(db)
        #: the database's URL as it may be shown: its password, if any, masked (the engine has it)
        self.url = shown_db(real)
        self.db = shown_db(db)
        self.engine: Engine = create_engine(real)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._conn: Connection | None = None
        self._sql: dict[str, tuple[str, tuple[str, ...] | None]] = {}
        self._batch_depth = 0
        self.busy_timeout_s: float | None = None  # SQLite's (s); a server has its own settings
        if self.is_sqlite:
            given = self.engine.url.query.get("timeout")
            self.busy_timeout_s = BUSY_TIMEOUT_S if given is None else float(str(given))
            event.listen(self.engine, "connect", _sqlite_listener(self.busy_timeout_s))
            path = self.engine.url.database
            if path and path != ":memory:":
                file = Path(path).expanduser()
                parent = file.resolve().parent
                if not parent.is_dir():
                    raise ConfigError(f"db: directory '{parent}' does not exist")
                if file.is_dir():
                    raise ConfigError(f"db: '{self.db}' is a directory, not a database file")
        try:
            with _faults(db):
                # new: created at head; old, newer or another program's: refused, unchanged
                self.schema: SchemaState = ensure_schema(self.engine, db)
                if self.is_sqlite:
                    self._use_wal()
                if reap_stale:
                    self.reap_stale_runs()
        except BaseException:
            self.close()
            raise

    def _use_wal(self) -> None:
        """Put an rram-hil SQLite file (checked by now: new, or ours) in WAL mode, where readers
        never block the writer; the mode stays with the file. A read-only file keeps its mode."""
        with self.engine.connect() as conn:
            mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar() or "").lower()
            if mode in ("wal", "memory"):
                return
            try:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            except DBAPIError as exc:
                if "readonly" not in cause(exc).lower():
                    raise

    # ------------------------------------------------------------------ connection
    @property
    def conn(self) -> Connection:
        """One long-lived connection for writes (each write commits immediately)."""
        if self._conn is None or self._conn.closed:
            self._conn = self.engine.connect()
        return self._conn

    def _commit(self) -> None:
        if self._batch_depth == 0:
            self.conn.commit()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group several writes into one transaction, committed when the block ends.

        Use it for writes that belong together (a pulse train's record and its readings);
        an exception inside the block rolls the group back and propagates.
        """
        self._batch_depth += 1
        try:
            yield
        except BaseException:
            self._batch_depth -= 1
            if self._batch_depth == 0:
                self.conn.rollback()
            raise
        self._batch_depth -= 1
        if self._batch_depth == 0:
            self.conn.commit()

    def abandon_pending(self) -> None:
        """Roll back whatever an exception cut short: a Ctrl-C or SIGTERM inside a write or its
        commit leaves the connection needing a rollback before its next write. Committed writes
        stay; only the write whose commit had not returned is dropped."""
        self._batch_depth = 0
        if self._conn is not None and not self._conn.closed:
            self._conn.rollback()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ runs
    def create_run(
        self,
        protocol: str,
        parameters: Mapping[str, Any],
        station: Mapping[str, Any],
        backend: str,
        backend_info: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> int:
        """Insert a run in state ``running`` and return its id."""
        values = {
            "protocol": protocol,
            "parameters": mask_values(dict(parameters)),  # a URL's password is never stored
            "station": mask_values(dict(station)),
            "station_name": str(station.get("name", "")),
            "backend": backend,
            "backend_info": mask_values(dict(backend_info or {})),
            "seed": seed,
            "package_version": __version__,
            "started_at": utcnow(),
            "status": "running",
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "resumes": 0,
        }
        result = self.conn.execute(insert(Run).values(**values))
        self.conn.commit()
        key = result.inserted_primary_key
        assert key is not None, "a single-row insert into runs always has a primary key"
        return int(key[0])

    def finish_run(self, run_id: int, status: str, error: str | None = None) -> None:
        """Set a run's final status (``completed``, ``failed`` or ``interrupted``) and end time."""
        if status not in RUN_STATUSES:
            raise ValueError(f"status: '{status}' is not one of {', '.join(RUN_STATUSES)}")
        if error is not None:  # one line, no SQL text of a database error, no password
            error = mask_text(error.split("\n[SQL:", 1)[0].split("\n(Background on this error", 1)[0])
        stmt = update(Run).where(Run.id == run_id).values(status=status, ended_at=utcnow(), error=error)
        self._record_end(run_id, stmt)

    def _record_end(self, run_id: int, stmt: Any) -> None:
        """Execute ``stmt``, part of the end of a run, and commit (outside a batch); while another
        program holds the database locked past the busy timeout, roll back and try again, for up
        to :data:`RECORD_TIMEOUT_S` (the end of a run is worth waiting for: otherwise the run
        would be left ``running``). Other writes fail after the busy timeout; the run then ends."""
        deadline = time.monotonic() + RECORD_TIMEOUT_S
        warned = False
        while True:
            try:
                self.conn.execute(stmt)
                self._commit()
                return
            except DBAPIError as exc:
                if self._batch_depth or not is_locked(exc) or time.monotonic() > deadline:
                    raise
                self.conn.rollback()
                if not warned:
                    warned = True
                    log.warning(
                        "db: '%s' is locked by another program (%s); still trying to record the end of "
                        "run %d (for up to %.0f s)",
                        self.db, cause(exc), run_id, RECORD_TIMEOUT_S,
                    )  # fmt: skip

    def claim_run(self, run_id: int, statuses: tuple[str, ...] = ("interrupted", "failed")) -> str:
        """Make this process the run's owner: one conditional ``UPDATE`` sets it ``running`` with
        this pid and host if, and only if, its status is one of ``statuses`` at that moment, so of
        two processes claiming one run exactly one succeeds. Returns the status it had; raises
        :class:`RunClaimed` (one line) when another process got there first or it is not claimable."""
        before = self.conn.execute(select(Run.status).where(Run.id == run_id)).scalar()
        if before is None:
            raise ConfigError(f"run: no run with id {run_id} in {self.db}")
        done = self.conn.execute(
            update(Run)
            .where(Run.id == run_id, Run.status.in_(statuses), Run.status == before)
            .values(status="running", pid=os.getpid(), hostname=socket.gethostname())
        )
        self.conn.commit()
        if done.rowcount == 1:
            return str(before)
        raise self.refusal(run_id)

    def refusal(self, run_id: int) -> RunClaimed:
        """Why the run cannot be claimed now, in one line: another process owns it, or it ended."""
        row = self.conn.execute(select(Run.status, Run.pid, Run.hostname).where(Run.id == run_id)).one()
        if row.status == "running":
            return RunClaimed(
                f"resume: run {run_id} is already running (pid {row.pid} on {row.hostname}); "
                "refused, so that no cycle is stored twice"
            )
        return RunClaimed(f"resume: run {run_id} is '{row.status}'; only interrupted or failed runs resume")

    def release_run(self, run_id: int, status: str) -> None:
        """Give back a claim that came to nothing (the backend did not open): the run gets
        ``status`` again, if this process still owns it."""
        self.conn.execute(
            update(Run)
            .where(Run.id == run_id, Run.status == "running", Run.pid == os.getpid())
            .where(Run.hostname == socket.gethostname())
            .values(status=status)
        )
        self.conn.commit()

    def reopen_run(self, run_id: int) -> None:
        """Mark a run ``running`` again in this process (resume); the caller has claimed it first
        (:meth:`claim_run`), or owns it by other means."""
        self.conn.execute(
            update(Run)
            .where(Run.id == run_id)
            .values(
                status="running",
                ended_at=None,
                error=None,
                pid=os.getpid(),
                hostname=socket.gethostname(),
                resumes=Run.resumes + 1,
            )
        )
        self.conn.commit()

    def reap_stale_runs(self) -> list[int]:
        """Mark ``interrupted`` every ``running`` run whose process (on this host) is gone.

        Each mark is conditional on the run still being ``running`` under that same dead owner, so
        a run another process has meanwhile reaped, or claimed and resumed, is left alone (and
        marked once, however many processes open the database at the same moment)."""
        host = socket.gethostname()
        rows = self.conn.execute(select(Run.id, Run.pid, Run.hostname).where(Run.status == "running")).all()
        stale = [r for r in rows if r.hostname == host and (r.pid is None or not _pid_alive(r.pid))]
        try:
            return self._mark_interrupted(stale)
        except DBAPIError as exc:
            if not read_only_fault(exc):
                raise
            self.conn.rollback()  # a read-only file or role: listings work, the runs stay as they are
            return []

    def _mark_interrupted(self, stale: Sequence[Any]) -> list[int]:
        marked = []
        for r in stale:
            done = self.conn.execute(
                update(Run)
                .where(Run.id == r.id, Run.status == "running", Run.hostname == r.hostname)
                .where(Run.pid.is_(None) if r.pid is None else Run.pid == r.pid)
                .values(
                    status="interrupted", ended_at=utcnow(), error="process ended without finishing the run"
                )
            )
            if done.rowcount == 1:
                self.conn.execute(
                    insert(Event).values(
                        run_id=r.id, kind="marked-interrupted", detail={"reason": "stale on open"}
                    )
                )
                marked.append(int(r.id))
            self.conn.commit()  # each mark with its event, at once
        return marked

    def run(self, run_id: int) -> RunInfo:
        """The run ``run_id``. Raises :class:`ConfigError` if there is none."""
        tab = Run.__table__
        row = self.conn.execute(select(tab).where(tab.c.id == run_id)).first()
        if row is None:
            raise ConfigError(f"run: no run with id {run_id} in {self.db}")
        return RunInfo(
            id=row.id,
            protocol=row.protocol,
            parameters=row.parameters,
            station=row.station,
            station_name=row.station_name,
            backend=row.backend,
            backend_info=row.backend_info,
            seed=row.seed,
            package_version=row.package_version,
            started_at=_utc(row.started_at),
            ended_at=None if row.ended_at is None else _utc(row.ended_at),
            status=row.status,
            error=row.error,
            resumes=row.resumes,
        )

    def runs_df(self) -> pd.DataFrame:
        """Every run with its reading count, newest last."""
        counts = select(Reading.run_id, func.count().label("readings")).group_by(Reading.run_id).subquery()
        stmt = (
            select(
                Run.id, Run.protocol, Run.status, Run.backend, Run.station_name, Run.seed,
                Run.started_at, Run.ended_at, func.coalesce(counts.c.readings, 0).label("readings"),
            )
            .outerjoin(counts, counts.c.run_id == Run.id)
            .order_by(Run.id)
        )  # fmt: skip
        return _naive_utc(pd.read_sql_query(stmt, self.conn), ("started_at", "ended_at"))

    # ------------------------------------------------------------------ bulk logging
    def _compiled(self, table: str) -> tuple[str, tuple[str, ...] | None]:
        if table not in self._sql:
            tab = Base.metadata.tables[table]
            cols = READING_COLUMNS if table == "readings" else PULSE_COLUMNS
            compiled = insert(tab).values({c: None for c in cols}).compile(dialect=self.engine.dialect)
            order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
            self._sql[table] = (str(compiled), order)
        return self._sql[table]

    def _bulk(self, table: str, columns: Mapping[str, Any], names: tuple[str, ...]) -> int:
        n = _column_length(columns)
        if n == 0:
            return 0
        unknown = set(columns) - set(names)
        if unknown:
            raise ValueError(f"{table}: unknown columns {sorted(unknown)} (known: {', '.join(names)})")
        lists = {name: _as_list(columns.get(name), n) for name in names}
        sql, order = self._compiled(table)
        params: list[Any]
        if order is not None:
            params = list(zip(*(lists[c] for c in order), strict=True))
        else:
            keys = list(names)
            params = [
                dict(zip(keys, vals, strict=True)) for vals in zip(*(lists[c] for c in keys), strict=True)
            ]
        self.conn.exec_driver_sql(sql, params)
        self._commit()
        return n

    def add_readings(self, columns: Mapping[str, Any]) -> int:
        """Insert and commit readings given column-wise (numpy arrays, lists or scalars).

        Required: ``run_id, seq, array, row, col, voltage_V, current_A, t_s``; optional:
        ``kind`` (default ``read``), ``conductance_S``, ``cycle``, ``pulse``, ``step``.
        Returns the number of rows written.
        """
        cols = dict(columns)
        cols.setdefault("kind", "read")
        return self._bulk("readings", cols, READING_COLUMNS)

    def add_pulses(self, columns: Mapping[str, Any]) -> int:
        """Insert and commit pulse records given column-wise (see :class:`hil.store.models.PulseRecord`)."""
        cols = dict(columns)
        cols.setdefault("purpose", "pulse")
        return self._bulk("pulses", cols, PULSE_COLUMNS)

    def relabel_readings(self, run_id: int, kind: str, new_kind: str, cycle: int | None = None) -> int:
        """Change the ``kind`` of a run's readings (optionally of one cycle); nothing is deleted."""
        tab = Reading.__table__
        stmt = update(tab).where(tab.c.run_id == run_id, tab.c.kind == kind)
        if cycle is not None:
            stmt = stmt.where(tab.c.cycle == cycle)
        result = self.conn.execute(stmt.values(kind=new_kind))
        self._commit()
        return int(result.rowcount or 0)

    def max_seq(self, run_id: int, table: str = "readings") -> int:
        """Largest ``seq`` logged for a run in ``readings`` or ``pulses`` (-1 when none)."""
        model = Reading if table == "readings" else PulseRecord
        value = self.conn.execute(select(func.max(model.seq)).where(model.run_id == run_id)).scalar()
        return -1 if value is None else int(value)

    def add_event(
        self, run_id: int, kind: str, detail: Mapping[str, Any] | None = None, t_s: float | None = None
    ) -> None:
        """Record a setting or state change of a run (committed at once; URL passwords masked).
        The events that end a run (``error``, ``safe-state``) wait out another program's lock like
        :meth:`finish_run`."""
        stmt = insert(Event).values(run_id=run_id, kind=kind, detail=mask_values(dict(detail or {})), t_s=t_s)
        if kind in END_EVENTS:
            self._record_end(run_id, stmt)
            return
        self.conn.execute(stmt)
        self._commit()

    def save_checkpoint(self, run_id: int, state: Mapping[str, Any]) -> None:
        """Replace the run's checkpoint (committed at once)."""
        tab = Checkpoint.__table__
        values = {"state": dict(state), "updated_at": utcnow()}
        done = self.conn.execute(update(tab).where(tab.c.run_id == run_id).values(**values))
        if not done.rowcount:
            self.conn.execute(insert(tab).values(run_id=run_id, **values))
        self._commit()

    def load_checkpoint(self, run_id: int) -> dict[str, Any] | None:
        row = self.conn.execute(select(Checkpoint.state).where(Checkpoint.run_id == run_id)).first()
        return None if row is None else dict(row[0])

    def add_artifact(self, run_id: int, kind: str, path: str | Path) -> None:
        self.conn.execute(insert(Artifact).values(run_id=run_id, kind=kind, path=str(path)))
        self._commit()

    def artifacts(self, run_id: int, kind: str | None = None) -> list[str]:
        stmt = select(Artifact.path).where(Artifact.run_id == run_id).order_by(Artifact.id)
        if kind is not None:
            stmt = stmt.where(Artifact.kind == kind)
        return [r[0] for r in self.conn.execute(stmt)]

    # ------------------------------------------------------------------ reading back
    def readings_df(self, run_id: int) -> pd.DataFrame:
        """Every reading of a run, in ``seq`` order, as a DataFrame."""
        tab = Reading.__table__
        stmt = select(*(tab.c[c] for c in READING_COLUMNS)).where(tab.c.run_id == run_id).order_by(tab.c.seq)
        return pd.read_sql_query(stmt, self.conn)

    def count_readings(self, run_id: int) -> int:
        """How many readings a run has: one ``count(*)`` on the ``(run_id, seq)`` index, without
        reading a row (milliseconds at millions of readings)."""
        return self._count(Reading, run_id)

    def count_pulses(self, run_id: int) -> int:
        """How many pulse records a run has (``count(*)`` on the index, like :meth:`count_readings`)."""
        return self._count(PulseRecord, run_id)

    def _count(self, model: type[Reading] | type[PulseRecord], run_id: int) -> int:
        value = self.conn.execute(
            select(func.count()).select_from(model).where(model.run_id == run_id)
        ).scalar()
        return int(value or 0)

    def iter_readings(self, run_id: int, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """A run's readings in ``seq`` order, ``chunk_rows`` at a time, streamed from the database.

        Every chunk has exactly :meth:`readings_df`'s columns and dtypes (decided for the whole
        run in SQL first: an integer column with a null anywhere in the run is ``float64`` in every
        chunk, as in ``readings_df``), so concatenated chunks equal ``readings_df(run_id)`` and their
        CSVs written one after another are the same bytes. Memory stays at one chunk whatever the
        run's size. Nothing is yielded for a run without readings.
        """
        yield from self._iter_table("readings", READING_COLUMNS, run_id, chunk_rows)

    def iter_pulses(self, run_id: int, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """A run's pulse records in ``seq`` order in chunks, with :meth:`pulses_df`'s columns and
        dtypes (see :meth:`iter_readings`)."""
        yield from self._iter_table("pulses", PULSE_COLUMNS, run_id, chunk_rows)

    def _iter_table(
        self, table: str, names: tuple[str, ...], run_id: int, chunk_rows: int
    ) -> Iterator[pd.DataFrame]:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows: {chunk_rows} must be at least 1")
        tab = Base.metadata.tables[table]
        dtypes = self._frame_dtypes(table, names, run_id)
        if dtypes is None:
            return
        stmt = (
            select(*(tab.c[c] for c in names))
            .where(tab.c.run_id == run_id)
            .order_by(tab.c.seq)
            .execution_options(stream_results=True, max_row_buffer=chunk_rows)
        )
        # the same query as readings_df/pulses_df (same order, same conversion), fetched in chunks
        for chunk in pd.read_sql_query(stmt, self.conn, chunksize=chunk_rows):
            for name, dtype in dtypes.items():
                if chunk[name].dtype != dtype:
                    chunk[name] = chunk[name].astype(dtype)
            yield chunk

    def _frame_dtypes(self, table: str, names: tuple[str, ...], run_id: int) -> dict[str, Any] | None:
        """The dtypes ``pd.read_sql_query`` gives a whole run's rows of ``table``, from one
        aggregate query (rows, non-null values per column); None when the run has no rows.

        An integer column without nulls is ``int64``, with some ``float64``; a real column with a
        value is ``float64``; text is pandas' string dtype; a column with no value at all is ``object``."""
        tab = Base.metadata.tables[table]
        counts = self.conn.execute(
            select(func.count(), *(func.count(tab.c[c]) for c in names)).where(tab.c.run_id == run_id)
        ).one()
        rows = int(counts[0])
        if rows == 0:
            return None
        text = pd.Series(["text"]).dtype  # pandas' inferred string dtype (object before pandas 3)
        dtypes: dict[str, Any] = {}
        for name, present in zip(names, counts[1:], strict=True):
            python_type = tab.c[name].type.python_type
            if present == 0:
                dtypes[name] = np.dtype(object)
            elif python_type is str:
                dtypes[name] = text
            elif python_type is int:
                dtypes[name] = np.dtype("int64" if present == rows else "float64")
            else:
                dtypes[name] = np.dtype("float64")
        return dtypes

    def pulses_df(self, run_id: int) -> pd.DataFrame:
        tab = PulseRecord.__table__
        stmt = select(*(tab.c[c] for c in PULSE_COLUMNS)).where(tab.c.run_id == run_id).order_by(tab.c.seq)
        return pd.read_sql_query(stmt, self.conn)

    def events_df(self, run_id: int) -> pd.DataFrame:
        tab = Event.__table__
        stmt = (
            select(tab.c.at, tab.c.t_s, tab.c.kind, tab.c.detail)
            .where(tab.c.run_id == run_id)
            .order_by(tab.c.id)
        )
        return _naive_utc(pd.read_sql_query(stmt, self.conn), ("at",))

    def integrity_ok(self) -> bool:
        """SQLite's ``PRAGMA integrity_check`` (True on other databases)."""
        if not self.is_sqlite:
            return True
        return self.conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def _utc(value: datetime) -> datetime:
    """A stored time as naive UTC, whatever the database gave back (SQLite: naive UTC already;
    PostgreSQL: aware, in the session's time zone)."""
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _naive_utc(df: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with its time columns as naive UTC, the same on every database."""
    for name in columns:
        col = df[name]
        if isinstance(col.dtype, pd.DatetimeTZDtype):
            df[name] = col.dt.tz_convert("UTC").dt.tz_localize(None)
        elif col.dtype == object and col.map(lambda v: getattr(v, "tzinfo", None) is not None).any():
            df[name] = col.map(lambda v: _utc(v) if isinstance(v, datetime) else v)
    return df


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Every SQLite connection's settings; none of them writes to the file (WAL mode is set by
    :meth:`Store._use_wal` once the file is known to be rram-hil's, so that another program's
    file is refused unchanged)."""
    _sqlite_settings(dbapi_connection, BUSY_TIMEOUT_S)


def _sqlite_listener(timeout_s: float) -> Any:
    def listener(dbapi_connection: Any, _record: Any) -> None:
        _sqlite_settings(dbapi_connection, timeout_s)

    return listener


def _sqlite_settings(dbapi_connection: Any, timeout_s: float) -> None:
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")  # first: the others may wait for a lock
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    cur.close()


def _column_length(columns: Mapping[str, Any]) -> int:
    n = None
    for name, value in columns.items():
        if isinstance(value, np.ndarray | list | tuple) and np.ndim(value) > 0:
            m = len(value)
            if n is None:
                n = m
            elif m != n:
                raise ValueError(f"column '{name}' has {m} values, others have {n}")
    return 1 if n is None else n


def _as_list(value: Any, n: int) -> Iterable[Any]:
    if value is None:
        return itertools.repeat(None, n)
    if isinstance(value, np.ndarray):
        return value.reshape(-1).tolist()
    if isinstance(value, list | tuple):
        return list(value)
    if isinstance(value, np.generic):
        value = value.item()
    return itertools.repeat(value, n)
