"""The store: every run, setting, pulse and reading, committed as taken (SQLAlchemy; SQLite by
default). :mod:`~hil.store.models` is the schema (``docs/schema.md``), :mod:`~hil.store.database`
the :class:`Store` that writes and reads it, :mod:`~hil.store.blocks` how readings are stored
(blocks, one row per batch) and the plain-SQL views ``readings``/``pulses``,
:mod:`~hil.store.schema` its versions and migrations (Alembic), :mod:`~hil.store.training` the training tables' helpers,
:mod:`~hil.store.urls` what ``--db`` may be (a file, SQLite or PostgreSQL URLs; passwords masked),
:mod:`~hil.store.faults` database faults as one line, :mod:`~hil.store.copy` ``rram-hil db copy``.
"""

from hil.store.database import (
    ABORT_REQUESTED,
    DEFAULT_DB,
    PULSE_COLUMNS,
    READING_COLUMNS,
    DatabaseInfo,
    RunClaimed,
    RunInfo,
    Store,
    database_exists,
    database_info,
    database_url,
    upgrade_database,
    validation_store,
)
from hil.store.faults import StoreFault
from hil.store.schema import HEAD, MigrationBlocked, SchemaError, SchemaOutdated, SchemaTooNew, Upgrade

__all__ = [
    "ABORT_REQUESTED",
    "DEFAULT_DB",
    "DatabaseInfo",
    "HEAD",
    "MigrationBlocked",
    "PULSE_COLUMNS",
    "READING_COLUMNS",
    "RunClaimed",
    "RunInfo",
    "SchemaError",
    "SchemaOutdated",
    "SchemaTooNew",
    "Upgrade",
    "Store",
    "StoreFault",
    "database_exists",
    "database_info",
    "database_url",
    "upgrade_database",
    "validation_store",
]
