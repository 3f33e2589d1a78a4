"""Schema versions of the store and their migrations (Alembic, shipped in ``hil/store/migrations``).

Every database records its schema version in Alembic's ``alembic_version`` table. Opening one
(:func:`ensure_schema`, called by :class:`~hil.store.Store`):

- a new, empty database is created at the head version, under a write lock, so several processes
  opening the same new database at once create it exactly once;
- a database at the head version opens;
- one without a version (written by rram-hil 0.1.0) or at an older version is refused with a
  one-line message naming ``rram-hil db upgrade``, which migrates it (:func:`upgrade`) in one
  transaction: every row kept, or nothing changed;
- one at a version this software does not know (written by a newer rram-hil) is refused.

Alembic is configured in code (:func:`alembic_config`) and imported only to migrate: opening a
database at the head version costs two small queries.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)

from hil.errors import ConfigError
from hil.store import blocks
from hil.store.models import Base
from hil.store.urls import shown

if TYPE_CHECKING:
    from alembic.config import Config

#: every schema version, oldest first (``versions/``; a test holds them to Alembic's history)
REVISIONS = ("0001", "0002", "0003")
HEAD = REVISIONS[-1]
#: the version written by rram-hil 0.1.0, whose databases carry no version
UNVERSIONED = REVISIONS[0]
VERSION_TABLE = "alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")

_version_table = Table(
    VERSION_TABLE,
    MetaData(),
    Column("version_num", String(32), nullable=False),
    PrimaryKeyConstraint("version_num", name="alembic_version_pkc"),
)
_PG_LOCK_KEY = 0x72616D68  # an advisory lock of the store's schema creation on PostgreSQL


class SchemaError(ConfigError):
    """The database's schema cannot be used by this software as it is (one-line message)."""


class SchemaOutdated(SchemaError):
    """The database has no schema version or an older one: ``rram-hil db upgrade`` migrates it."""


class SchemaTooNew(SchemaError):
    """The database was written by a newer rram-hil."""


class MigrationBlocked(SchemaError):
    """A migration found data it cannot carry over (e.g. a doubled ``(run_id, seq)``); nothing changed."""


@dataclass(frozen=True)
class SchemaState:
    """What a database holds: its tables (SQLite's own left out) and its schema version."""

    tables: frozenset[str]
    version: str | None

    @property
    def empty(self) -> bool:
        return not self.tables

    @property
    def ours(self) -> bool:
        return "runs" in self.tables or VERSION_TABLE in self.tables


def shown_db(db: str | Path) -> str:
    """``db`` as the user may be shown it: a path as given, a URL with its password masked."""
    return shown(db)


def upgrade_hint(db: str | Path) -> str:
    return f"run `rram-hil db upgrade --db {shown_db(db)}`"


def read_state(conn: Connection) -> SchemaState:
    """The tables and schema version of the database behind ``conn`` (reads only)."""
    tables = frozenset(t for t in inspect(conn).get_table_names() if not t.startswith("sqlite_"))
    version = None
    if VERSION_TABLE in tables:
        rows = [r[0] for r in conn.execute(_version_table.select())]
        if len(rows) > 1:
            raise SchemaError(f"db: schema versions {', '.join(sorted(rows))} at once (branched migrations)")
        version = rows[0] if rows else None
    return SchemaState(tables, version)


def check(state: SchemaState, db: str | Path) -> None:
    """Raise the one-line :class:`SchemaError` that tells why a database cannot be opened as it is."""
    where = shown_db(db)
    if not state.ours:
        raise SchemaError(
            f"db: '{where}' is not an rram-hil database (it has tables, none of them 'runs'); nothing was changed"
        )
    if state.version is None:
        raise SchemaOutdated(
            f"db: '{where}' was written by rram-hil 0.1.0 (no schema version; this rram-hil needs "
            f"{HEAD}): {upgrade_hint(db)}"
        )
    if state.version not in REVISIONS:
        raise SchemaTooNew(
            f"db: '{where}' has schema version {state.version}, newer than this rram-hil knows "
            f"(its newest is {HEAD}): upgrade rram-hil to open it"
        )
    if state.version != HEAD:
        raise SchemaOutdated(
            f"db: '{where}' has schema version {state.version}, this rram-hil needs {HEAD}: {upgrade_hint(db)}"
        )


@contextmanager
def locked(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction that holds the database's write lock until it commits
    (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock). Committed when the
    block ends, rolled back (schema changes included: both databases have transactional DDL) if
    it raises."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            driver: Any = conn.connection.driver_connection
            previous = driver.isolation_level
            driver.isolation_level = None  # pysqlite leaves transactions to us: BEGIN IMMEDIATE below
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    conn.rollback()
                    raise
                conn.commit()
            finally:
                driver.isolation_level = previous
            return
        with conn.begin():
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            yield conn


def _stamp(conn: Connection, version: str) -> None:
    _version_table.create(conn, checkfirst=True)
    conn.execute(_version_table.delete())
    conn.execute(_version_table.insert().values(version_num=version))


#: the tables rram-hil 0.1.0 created (schema 0001); an unversioned database is completed to these
TABLES_0001 = (
    "runs", "readings", "pulses", "events", "checkpoints", "artifacts", "epochs", "epoch_arrays",
    "snapshots", "tracked_synapses", "weight_errors",
)  # fmt: skip


def _create(conn: Connection) -> None:
    """The head schema in an empty database: the models' tables, the block triggers and the
    ``readings``/``pulses`` views (:mod:`hil.store.blocks`), stamped at :data:`HEAD` (a test
    holds this to running every migration from nothing)."""
    Base.metadata.create_all(conn)
    blocks.create_views_and_triggers(conn.exec_driver_sql, conn.dialect.name)
    _stamp(conn, HEAD)


def ensure_schema(engine: Engine, db: str | Path) -> SchemaState:
    """Open the database behind ``engine`` for use: create an empty one at the head version, pass
    one at the head version, refuse any other with a one-line :class:`SchemaError`."""
    with engine.connect() as conn:
        state = read_state(conn)
    if state.empty:
        with locked(engine) as conn:
            state = read_state(conn)  # another process may have created it while we waited
            if state.empty:
                _create(conn)
                state = read_state(conn)
    check(state, db)
    return state


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for the store's migrations, run on ``connection`` (no ``alembic.ini``)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did: the version found (None: no version, 0.1.0) and the one left."""

    before: str | None
    after: str
    created: bool = False

    @property
    def changed(self) -> bool:
        return self.created or self.before != self.after


def upgrade(engine: Engine, db: str | Path) -> Upgrade:
    """Migrate the database behind ``engine`` to the head version, in one transaction under the
    write lock: every row kept, or (when a migration refuses, e.g. duplicated ``(run_id, seq)``)
    nothing changed. An empty database is created at the head version."""
    from alembic import command

    with locked(engine) as conn:
        state = read_state(conn)
        if state.empty:
            _create(conn)
            return Upgrade(None, HEAD, created=True)
        if not state.ours:
            check(state, db)
        if state.version is not None and state.version not in REVISIONS:
            check(state, db)  # newer than this software: refused
        if state.version == HEAD:
            return Upgrade(HEAD, HEAD)
        if state.version is None:
            if "runs" not in state.tables:
                check(state, db)
            missing = [
                t for t in Base.metadata.sorted_tables if t.name in TABLES_0001 and t.name not in state.tables
            ]
            Base.metadata.create_all(conn, tables=missing)  # 0.1.0 always made them all; never hurts
            _stamp(conn, UNVERSIONED)
        command.upgrade(alembic_config(conn), HEAD)
        return Upgrade(state.version, read_state(conn).version or HEAD)


def main(argv: list[str] | None = None) -> None:
    """``python -m hil.store.schema revision -m MESSAGE``: a new, empty migration (for developers)."""
    from alembic import command
    from alembic.config import Config

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "revision" or args[1] != "-m":
        raise SystemExit("usage: python -m hil.store.schema revision -m MESSAGE")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    number = f"{len(REVISIONS) + 1:04d}"
    command.revision(config, message=args[2], rev_id=number, head=HEAD)
    print(f"wrote revision {number}: add it to REVISIONS in {os.path.relpath(__file__)}")


if __name__ == "__main__":
    main()
