"""The store: every run, setting, pulse and reading, committed as taken (SQLAlchemy; SQLite by
default). :mod:`~hil.store.models` is the schema (``docs/schema.md``), :mod:`~hil.store.database`
the :class:`Store` that writes and reads it, :mod:`~hil.store.training` the training tables' helpers.
"""

from hil.store.database import (
    DEFAULT_DB,
    PULSE_COLUMNS,
    READING_COLUMNS,
    RunInfo,
    Store,
    database_exists,
    database_url,
    validation_store,
)

__all__ = [
    "DEFAULT_DB",
    "PULSE_COLUMNS",
    "READING_COLUMNS",
    "RunInfo",
    "Store",
    "database_exists",
    "database_url",
    "validation_store",
]
