"""The store: every run, setting, pulse and reading, committed as it is taken.

SQLite by default (WAL journal, ``synchronous=NORMAL``, foreign keys on), any SQLAlchemy URL
otherwise. A committed transaction survives the writing process being killed at any moment
(SIGKILL included); a run left ``running`` by a process that no longer exists is marked
``interrupted`` the next time the store is opened.

Readings and pulse records are stored in blocks (:mod:`hil.store.blocks`): one row per logged
batch, its readings row-major JSON written by orjson, decoded in plain SQL by the views
``readings`` and ``pulses`` (one row per reading) and by the library straight into numpy. The
block insert is compiled once for the database's dialect and goes straight to the driver: over
a million committed readings/s (``benchmarks/bench_store_throughput.py``), portable.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    Connection,
    Engine,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.sql import text

from hil import __version__
from hil.errors import ConfigError
from hil.store import blocks
from hil.store.blocks import PULSES, READINGS, Layout
from hil.store.faults import StoreFault, cause, describe, is_locked, read_only_fault
from hil.store.models import (
    RUN_STATUSES,
    Artifact,
    Base,
    Checkpoint,
    Event,
    ReadingBlock,
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
#: the event that asks a running run to stop (:meth:`Store.request_abort`); the process running
#: it sees it at its next commit (:class:`hil.engine.AbortWatch`), from any process or machine
ABORT_REQUESTED = "abort-requested"

DEFAULT_DB = "rram-hil.sqlite"
#: characters of a block's ``data`` fetched per reading a sample takes (a reading's inner array
#: of nine 17-digit values with exponents is under 256; a longer one is only left out)
SAMPLE_CHARS_PER_READING = 256

#: the columns of ``readings`` (the view) and of ``readings_df``, in order
READING_COLUMNS = READINGS.columns
#: the columns of ``pulses`` (the view) and of ``pulses_df``, in order
PULSE_COLUMNS = PULSES.columns


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
            if READINGS.table in state.tables:  # schema 0003 on: blocks
                readings = int(conn.execute(select(func.sum(ReadingBlock.n))).scalar() or 0)
            elif "readings" in state.tables:  # an older schema: the narrow table
                readings = int(conn.execute(text("SELECT count(*) FROM readings")).scalar() or 0)
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

    def __init__(
        self, db: str | Path = DEFAULT_DB, reap_stale: bool = True, must_exist: bool = False
    ) -> None:
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
        self._sql: dict[str, tuple[str, tuple[int, ...] | None, tuple[str, ...]]] = {}
        self._checkpoint_stmts: tuple[Any, ...] = ()
        self._batch_depth = 0
        #: called after every commit of a write outside a batch (and at the end of a batch): the
        #: run engine's cheap, rate-limited look for an abort request (:class:`hil.engine.AbortWatch`)
        self.after_commit: Callable[[], None] | None = None
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
        never block the writer; the mode stays with the file. A read-only file keeps its mode.

        Several processes opening a new file at once race for the switch, and SQLite may refuse
        it at once ("database is locked") instead of waiting out the busy timeout, depending on
        the locks the others hold at that moment: it is tried again, until the mode is WAL (this
        connection's switch or another's) or the busy timeout has passed."""
        deadline = time.monotonic() + (self.busy_timeout_s or 0.0)
        while True:
            with self.engine.connect() as conn:
                mode = str(conn.exec_driver_sql("PRAGMA journal_mode").scalar() or "").lower()
                if mode in ("wal", "memory"):
                    return
                try:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                    return
                except DBAPIError as exc:
                    message = cause(exc).lower()
                    if "readonly" in message:
                        return
                    if "locked" not in message or time.monotonic() >= deadline:
                        raise
            time.sleep(0.01)  # another process holds the file for a moment

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
            if self.after_commit is not None:
                self.after_commit()

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
            if self.after_commit is not None:
                self.after_commit()

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

    def request_abort(self, run_id: int, origin: Mapping[str, Any]) -> int:
        """Ask the running run ``run_id`` to stop: an ``abort-requested`` event with ``origin``
        (who asked, from where), written if, and only if, the run is ``running`` at that moment
        (one ``INSERT ... SELECT``). The process running it, on this machine or another, sees it
        at its next commit and stops as Ctrl-C stops it. Returns the event's id.

        Raises:
            ConfigError: no such run, or it is not running (one line; nothing is written).
        """
        runs, events = Run.__table__, Event.__table__
        detail = {"origin": mask_values(dict(origin))}
        chosen = select(
            runs.c.id,
            bindparam("at", utcnow(), type_=events.c.at.type),
            bindparam("kind", ABORT_REQUESTED, type_=events.c.kind.type),
            bindparam("detail", detail, type_=events.c.detail.type),
        ).where(runs.c.id == run_id, runs.c.status == "running")
        stmt = insert(events).from_select(["run_id", "at", "kind", "detail"], chosen).returning(events.c.id)
        try:
            event_id = self.conn.execute(stmt).scalar()
            self.conn.commit()
        except DBAPIError as exc:
            self.conn.rollback()
            if is_locked(exc):  # a writer holds the lock past the busy timeout (paused, hung)
                raise ConfigError(f"abort: {describe(exc, self.db, unchanged=True)}; try again") from None
            raise
        except BaseException:
            self.conn.rollback()
            raise
        if event_id is None:
            status = self.conn.execute(select(Run.status).where(Run.id == run_id)).scalar()
            self.conn.rollback()
            if status is None:
                raise ConfigError(f"abort: no run with id {run_id} in {self.db}")
            raise ConfigError(f"abort: run {run_id} is '{status}', not running; nothing changed")
        return int(event_id)

    def wait_until_ended(self, run_id: int, timeout_s: float, poll_s: float = 0.05) -> str:
        """Wait up to ``timeout_s`` for run ``run_id`` to be no longer ``running`` and return its
        status (``running`` at the deadline). A run of this host whose process is gone is marked
        ``interrupted`` meanwhile (:meth:`reap_stale_runs`), so a killed run does not look alive."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.reap_stale_runs()
            status = str(self.conn.execute(select(Run.status).where(Run.id == run_id)).scalar())
            self.conn.rollback()  # a fresh snapshot next time: what the run's process committed
            if status != "running" or time.monotonic() >= deadline:
                return status
            time.sleep(poll_s)

    def last_event_id(self, run_id: int, kind: str | None = None) -> int:
        """The id of the run's latest event (of ``kind``), 0 when it has none. Like
        :meth:`abort_request`, it leaves the connection as it found it (a read transaction it
        opened is ended)."""
        opened = not self.conn.in_transaction()
        stmt = select(func.max(Event.id)).where(Event.run_id == run_id)
        if kind is not None:
            stmt = stmt.where(Event.kind == kind)
        value = self.conn.execute(stmt).scalar()
        if opened:
            self.conn.rollback()
        return int(value or 0)

    def abort_request(self, run_id: int, after_event_id: int = 0) -> dict[str, Any] | None:
        """The first ``abort-requested`` event of the run after event ``after_event_id`` (its
        detail, with its ``id``), or None: one query on the events' ``run_id`` index. A read
        transaction it opens it ends (a writer holds no old snapshot: SQLite could not turn it
        into a write when another process has committed since)."""
        opened = not self.conn.in_transaction()
        row = self.conn.execute(
            select(Event.id, Event.detail)
            .where(Event.run_id == run_id, Event.kind == ABORT_REQUESTED, Event.id > after_event_id)
            .order_by(Event.id)
            .limit(1)
        ).first()
        if opened:
            self.conn.rollback()
        if row is None:
            return None
        return {"id": int(row[0]), **dict(row[1] or {})}

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
        blocks_tab = ReadingBlock.__table__
        counts = (
            select(blocks_tab.c.run_id, func.sum(blocks_tab.c.n).label("readings"))
            .group_by(blocks_tab.c.run_id)
            .subquery()
        )
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
    def _compiled(self, layout: Layout) -> tuple[str, tuple[int, ...] | None, tuple[str, ...]]:
        """The block insert of ``layout`` compiled once for this database's dialect: SQL text,
        for positional drivers the index into a block row of each parameter, the column names."""
        if layout.table not in self._sql:
            tab = Base.metadata.tables[layout.table]
            names = layout.block_columns
            compiled = insert(tab).values({c: None for c in names}).compile(dialect=self.engine.dialect)
            order = None
            if compiled.positional and compiled.positiontup:
                order = tuple(names.index(c) for c in compiled.positiontup)
            self._sql[layout.table] = (str(compiled), order, names)
        return self._sql[layout.table]

    def _add_blocks(self, layout: Layout, columns: Mapping[str, Any]) -> int:
        rows = blocks.encode(layout, columns)
        if not rows:
            return 0
        sql, order, names = self._compiled(layout)
        params: Sequence[Any]
        if order is None:
            params = [dict(zip(names, row, strict=True)) for row in rows]
        elif order == tuple(range(len(names))):
            params = rows
        else:
            params = [tuple(row[i] for i in order) for row in rows]
        self._driver_execute(sql, params)
        self._commit()
        return sum(int(row[2]) for row in rows)

    def _driver_execute(self, sql: str, params: Sequence[Any]) -> None:
        """Run ``sql`` once per parameter set on the driver's own cursor, inside this connection's
        transaction (begun here when none is, so that :meth:`_commit` commits it): the logging
        path without SQLAlchemy's per-statement bookkeeping (~30 us a statement here). Driver
        errors are raised as SQLAlchemy's (``IntegrityError`` for a doubled seq, ...)."""
        conn = self.conn
        if not conn.in_transaction():
            conn.begin()
        dbapi = self.engine.dialect.loaded_dbapi
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(params) == 1:
                cursor.execute(sql, params[0])
            else:
                cursor.executemany(sql, params)
        except dbapi.Error as exc:
            raise DBAPIError.instance(sql, params, exc, dbapi.Error, dialect=self.engine.dialect) from exc
        finally:
            cursor.close()

    def add_readings(self, columns: Mapping[str, Any]) -> int:
        """Insert and commit readings given column-wise (numpy arrays, lists or scalars).

        Required: ``run_id, seq, array, row, col, voltage_V, current_A, t_s``; optional:
        ``kind`` (default ``read``), ``conductance_S``, ``cycle``, ``pulse``, ``step``.
        Stored as blocks of consecutive ``seq`` (:mod:`hil.store.blocks`). Returns the number of
        readings written.

        Raises:
            ValueError: an unknown column, columns of different lengths, a required column
                missing or null.
            sqlalchemy.exc.IntegrityError: a ``(run_id, seq)`` already stored, an unknown run.
        """
        return self._add_blocks(READINGS, columns)

    def add_pulses(self, columns: Mapping[str, Any]) -> int:
        """Insert and commit pulse records given column-wise (columns: :data:`PULSE_COLUMNS`;
        required ``run_id, seq, array, row, col, amplitude_V, width_s, count, t_s``)."""
        return self._add_blocks(PULSES, columns)

    def relabel_readings(self, run_id: int, kind: str, new_kind: str, cycle: int | None = None) -> int:
        """Change the ``kind`` of a run's readings (optionally of one cycle); nothing is deleted.
        Returns the number of readings relabelled. A block holding readings of several cycles is
        split (same readings, same ``seq``), so that the relabelled ones get blocks of their own."""
        tab = ReadingBlock.__table__
        where = [tab.c.run_id == run_id, tab.c.kind == kind]
        whole = [*where] if cycle is None else [*where, tab.c.cycle == cycle]
        total = select(func.coalesce(func.sum(tab.c.n), 0)).where(*whole)
        changed = int(self.conn.execute(total).scalar() or 0)
        self.conn.execute(update(tab).where(*whole).values(kind=new_kind))
        if cycle is not None:
            bit = 1 << READINGS.numeric.index("cycle")
            mixed = self.conn.execute(
                select(tab.c.id, *(tab.c[c] for c in _BLOCK_READ))
                .where(*where, tab.c.cycle.is_(None), tab.c.has_value.op("&")(bit) != 0)
                .order_by(tab.c.seq_first)
            ).all()
            for row in mixed:
                changed += self._relabel_block(tab, run_id, row, cycle, new_kind)
        self._commit()
        return changed

    def _relabel_block(self, tab: Table, run_id: int, row: Any, cycle: int, new_kind: str) -> int:
        """Relabel the readings of ``cycle`` in one block of several cycles: the block is
        replaced by blocks of the same readings, split where the label changes (one transaction)."""
        every = [True] * len(READINGS.numeric)
        frame = blocks.decode(READINGS, run_id, [tuple(row[1:])], blocks.frame_dtypes(READINGS, every, every))
        hit = frame["cycle"].to_numpy() == cycle
        if not hit.any():
            return 0
        columns: dict[str, Any] = {c: frame[c].to_numpy() for c in READING_COLUMNS}
        columns["kind"] = np.where(hit, new_kind, frame["kind"].to_numpy(dtype=object)).astype(object)
        self.conn.execute(delete(tab).where(tab.c.id == row[0]))
        depth = self._batch_depth
        self._batch_depth = depth + 1  # the caller commits
        try:
            self._add_blocks(READINGS, columns)
        finally:
            self._batch_depth = depth
        return int(hit.sum())

    def max_seq(self, run_id: int, table: str = "readings") -> int:
        """Largest ``seq`` logged for a run in ``readings`` or ``pulses`` (-1 when none): the end
        of the run's last block, found on the ``(run_id, seq_first)`` index."""
        tab = Base.metadata.tables[_layout(table).table]
        value = self.conn.execute(
            select(tab.c.seq_first + tab.c.n - 1)
            .where(tab.c.run_id == run_id)
            .order_by(tab.c.seq_first.desc())
            .limit(1)
        ).scalar()
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
        """Replace the run's checkpoint (committed at once). On the logging path (once per pulse
        train of a cycling run): the update and insert are built once; on SQLite they go to the
        driver with the values converted by the columns' own bind processors (JSON text, the
        timestamp as SQLAlchemy stores it), elsewhere through SQLAlchemy (whose driver converts
        JSON itself)."""
        if not self._checkpoint_stmts:
            tab = Checkpoint.__table__
            values = {
                "state": bindparam("state", type_=tab.c.state.type),
                "updated_at": bindparam("updated_at"),
            }
            update_stmt = update(tab).where(tab.c.run_id == bindparam("run")).values(**values)
            insert_stmt = insert(tab).values(run_id=bindparam("run"), **values)
            dialect = self.engine.dialect
            state_bind = tab.c.state.type.bind_processor(dialect)
            at_bind = tab.c.updated_at.type.bind_processor(dialect)
            driver = None
            if self.is_sqlite and state_bind is not None:
                driver = (
                    _driver_statement(update_stmt, dialect),
                    _driver_statement(insert_stmt, dialect),
                    state_bind,
                    at_bind or (lambda value: value),
                )
            self._checkpoint_stmts = (update_stmt, insert_stmt, driver)
        update_stmt, insert_stmt, driver = self._checkpoint_stmts
        params = {"run": run_id, "state": dict(state), "updated_at": utcnow()}
        if driver is not None:
            (up_sql, up_order), (in_sql, in_order), state_bind, at_bind = driver
            raw = {
                "run": run_id,
                "state": state_bind(params["state"]),
                "updated_at": at_bind(params["updated_at"]),
            }
            done = self.conn.exec_driver_sql(up_sql, _params(raw, up_order))
            if not done.rowcount:
                self.conn.exec_driver_sql(in_sql, _params(raw, in_order))
        else:
            done = self.conn.execute(update_stmt, params)
            if not done.rowcount:
                self.conn.execute(insert_stmt, params)
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
        """Every reading of a run, in ``seq`` order, as a DataFrame: the columns
        :data:`READING_COLUMNS` with the dtypes a narrow table gave (see :meth:`iter_readings`)."""
        return self._whole(READINGS, run_id)

    def pulses_df(self, run_id: int) -> pd.DataFrame:
        """Every pulse record of a run, in ``seq`` order (columns :data:`PULSE_COLUMNS`)."""
        return self._whole(PULSES, run_id)

    def readings_after(
        self,
        run_id: int,
        after_seq: int,
        max_rows: int | None = None,
        kinds: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The readings of a run with ``seq > after_seq`` (``-1``: from the first), in ``seq``
        order, with :meth:`readings_df`'s columns and dtypes: what is new since the last look.

        Only the blocks that hold such readings are read (a range of the ``(run_id, seq_first)``
        index), so asking again and again for what is new costs the new readings, not the run.
        ``max_rows`` caps the readings returned (ask again from the last ``seq``); ``kinds`` keeps
        only readings of those kinds.
        """
        dtypes = self._dtypes(READINGS, run_id)
        if dtypes is None:
            return blocks.empty_frame(READINGS)
        tab = ReadingBlock.__table__
        stmt = self._blocks_stmt(READINGS, run_id).where(
            tab.c.seq_first > after_seq - blocks.MAX_BLOCK, tab.c.seq_first + tab.c.n > after_seq + 1
        )
        if kinds is not None:
            stmt = stmt.where(tab.c.kind.in_(list(kinds)))
        picked: list[Any] = []
        wanted = max_rows if max_rows is not None else None
        result = self.conn.execute(stmt.execution_options(stream_results=True, max_row_buffer=16))
        try:
            for row in result:
                first, n = int(row[0]), int(row[1])
                skip = max(0, min(n, after_seq + 1 - first))  # only the first can hold older ones
                take = n - skip if wanted is None else min(n - skip, wanted)
                if take <= 0:
                    continue
                picked.append(blocks.slice_block(row, skip, take))  # only what is asked is decoded
                if wanted is not None:
                    wanted -= take
                    if wanted <= 0:
                        break
        finally:
            result.close()
        if not picked:  # nothing new: no rows, with the run's dtypes all the same
            empty = blocks.empty_frame(READINGS)
            return empty.astype({"run_id": np.int64, "seq": np.int64, **dtypes})
        return blocks.decode(READINGS, run_id, picked, dtypes)

    def readings_sample(
        self, run_id: int, readings: int, blocks_at_most: int, kinds: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """A quick sample of a large run, about ``readings`` readings: the first readings of each
        of at most ``blocks_at_most`` evenly spaced blocks (of ``kinds``), in ``seq`` order, with
        :meth:`readings_df`'s columns and dtypes. Two queries, whatever the run's size: the blocks'
        starts on the ``(run_id, seq_first)`` index, then the picked blocks with only the head of
        their ``data`` (``substr`` in SQL), so a block of 65,536 readings costs the ones taken."""
        dtypes = self._dtypes(READINGS, run_id)
        if dtypes is None:
            return blocks.empty_frame(READINGS)
        tab = ReadingBlock.__table__
        where = [tab.c.run_id == run_id]
        if kinds is not None:
            where.append(tab.c.kind.in_(list(kinds)))
        starts = np.asarray(self.conn.execute(select(tab.c.seq_first).where(*where)).scalars().all(), dtype=np.int64)
        if not starts.size:
            empty = blocks.empty_frame(READINGS)
            return empty.astype({"run_id": np.int64, "seq": np.int64, **dtypes})
        starts.sort()
        picks = np.unique(np.linspace(0, starts.size - 1, max(1, blocks_at_most)).round().astype(np.int64))
        rows_per_block = max(1, readings // picks.size)
        cols = [tab.c[c] for c in ("seq_first", "n", "kind", "array", *READINGS.numeric)]
        head = func.substr(tab.c.data, 1, rows_per_block * SAMPLE_CHARS_PER_READING)
        chosen = [int(x) for x in starts[picks]]
        rows: list[Any] = []
        for k in range(0, len(chosen), 500):  # a bounded IN list per query
            stmt = select(*cols, head).where(*where, tab.c.seq_first.in_(chosen[k : k + 500]))
            rows.extend(self.conn.execute(stmt.order_by(tab.c.seq_first)).all())
        cut = [b for b in (blocks.head_of_block(r, rows_per_block) for r in rows) if b is not None]
        if not cut:
            empty = blocks.empty_frame(READINGS)
            return empty.astype({"run_id": np.int64, "seq": np.int64, **dtypes})
        return blocks.decode(READINGS, run_id, cut, dtypes)

    def count_readings(self, run_id: int) -> int:
        """How many readings a run has: the sum of its blocks' sizes on the ``(run_id, seq_first)``
        index, without decoding a reading (milliseconds at millions of readings)."""
        return self._count(READINGS, run_id)

    def count_pulses(self, run_id: int) -> int:
        """How many pulse records a run has (like :meth:`count_readings`)."""
        return self._count(PULSES, run_id)

    def _count(self, layout: Layout, run_id: int) -> int:
        tab = Base.metadata.tables[layout.table]
        value = self.conn.execute(select(func.sum(tab.c.n)).where(tab.c.run_id == run_id)).scalar()
        return int(value or 0)

    def iter_readings(self, run_id: int, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """A run's readings in ``seq`` order, ``chunk_rows`` at a time, streamed from the database.

        Every chunk has exactly :meth:`readings_df`'s columns and dtypes (decided for the whole
        run in SQL first, from the blocks' ``has_null``/``has_value`` masks: an integer column with
        a null anywhere in the run is ``float64`` in every chunk, as in ``readings_df``), so
        concatenated chunks equal ``readings_df(run_id)`` and their CSVs written one after another
        are the same bytes. Memory stays at one chunk (plus one block) whatever the run's size.
        Nothing is yielded for a run without readings.
        """
        yield from self._iter_layout(READINGS, run_id, chunk_rows)

    def iter_pulses(self, run_id: int, chunk_rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """A run's pulse records in ``seq`` order in chunks, with :meth:`pulses_df`'s columns and
        dtypes (see :meth:`iter_readings`)."""
        yield from self._iter_layout(PULSES, run_id, chunk_rows)

    def _dtypes(self, layout: Layout, run_id: int) -> dict[str, Any] | None:
        """The run's column dtypes from one aggregate over its blocks' masks; None without blocks."""
        tab = Base.metadata.tables[layout.table]
        k = len(layout.numeric)
        bits = [1 << i for i in range(k)]
        row = self.conn.execute(
            select(
                func.count(),
                *(func.max(tab.c.has_null.op("&")(b)) for b in bits),
                *(func.max(tab.c.has_value.op("&")(b)) for b in bits),
            ).where(tab.c.run_id == run_id)
        ).one()
        if not row[0]:
            return None
        nulls = [bool(v) for v in row[1 : 1 + k]]
        values = [bool(v) for v in row[1 + k :]]
        return blocks.frame_dtypes(layout, nulls, values)

    def _blocks_stmt(self, layout: Layout, run_id: int) -> Any:
        tab = Base.metadata.tables[layout.table]
        cols = ("seq_first", "n", layout.label, "array", *layout.numeric, "data")
        return select(*(tab.c[c] for c in cols)).where(tab.c.run_id == run_id).order_by(tab.c.seq_first)

    def _whole(self, layout: Layout, run_id: int) -> pd.DataFrame:
        dtypes = self._dtypes(layout, run_id)
        if dtypes is None:
            return blocks.empty_frame(layout)
        tab = Base.metadata.tables[layout.table]
        total = int(self.conn.execute(select(func.sum(tab.c.n)).where(tab.c.run_id == run_id)).scalar() or 0)
        stmt = self._blocks_stmt(layout, run_id).execution_options(stream_results=True, max_row_buffer=64)
        result = self.conn.execute(stmt)
        try:
            return blocks.decode(layout, run_id, result, dtypes, total)
        finally:
            result.close()

    def _iter_layout(self, layout: Layout, run_id: int, chunk_rows: int) -> Iterator[pd.DataFrame]:
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows: {chunk_rows} must be at least 1")
        dtypes = self._dtypes(layout, run_id)
        if dtypes is None:
            return
        stmt = self._blocks_stmt(layout, run_id).execution_options(stream_results=True, max_row_buffer=64)
        pending: list[Any] = []  # block rows not decoded yet
        pending_rows = 0
        left: pd.DataFrame | None = None  # decoded readings not yielded yet
        for row in self.conn.execute(stmt):
            pending.append(row)
            pending_rows += int(row[1])
            if pending_rows + (0 if left is None else len(left)) >= chunk_rows:
                left = yield from _chunks(layout, run_id, pending, dtypes, left, chunk_rows)
                pending, pending_rows = [], 0
        if pending:
            left = yield from _chunks(layout, run_id, pending, dtypes, left, chunk_rows)
        if left is not None and len(left):
            yield left

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
    # 16 KiB pages for a new database (no effect on an existing one): a block of 50,000 readings
    # (~3 MB) commits in a quarter of the WAL frames of 4 KiB pages, twice as fast; a small one
    # costs ~20 us more (docs/schema.md). WAL is switched on once the file is known to be ours.
    cur.execute("PRAGMA page_size=16384")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA wal_autocheckpoint=2500")  # pages: a WAL of ~40 MB at 16 KiB pages
    cur.close()


#: the block columns ``relabel_readings`` decodes (as :meth:`Store._blocks_stmt` reads them)
_BLOCK_READ = ("seq_first", "n", "kind", "array", *READINGS.numeric, "data")


def _layout(table: str) -> Layout:
    if table == "readings":
        return READINGS
    if table == "pulses":
        return PULSES
    raise ValueError(f"table: '{table}' is not one of readings, pulses")


def _chunks(
    layout: Layout,
    run_id: int,
    rows: list[Any],
    dtypes: dict[str, Any],
    left: pd.DataFrame | None,
    chunk_rows: int,
) -> Generator[pd.DataFrame, None, pd.DataFrame]:
    """Yield the full chunks of ``left`` followed by the decoded ``rows``; return the rest."""
    frame = blocks.decode(layout, run_id, rows, dtypes)
    if left is not None and len(left):
        frame = pd.concat([left, frame], ignore_index=True)
    start = 0
    while len(frame) - start >= chunk_rows:
        yield frame.iloc[start : start + chunk_rows].reset_index(drop=True)
        start += chunk_rows
    return frame.iloc[start:].reset_index(drop=True)


def _driver_statement(stmt: Any, dialect: Any) -> tuple[str, tuple[str, ...] | None]:
    """``stmt`` compiled once for ``dialect``: its SQL and, for positional drivers, the order of
    its bound parameters' names (None: the driver takes a dict)."""
    compiled = stmt.compile(dialect=dialect)
    order = tuple(compiled.positiontup) if compiled.positional and compiled.positiontup else None
    return str(compiled), order


def _params(values: Mapping[str, Any], order: tuple[str, ...] | None) -> Any:
    return dict(values) if order is None else tuple(values[name] for name in order)
