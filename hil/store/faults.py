"""Database faults as one line: what went wrong with which database, never a traceback.

:func:`describe` turns an exception of SQLAlchemy or of a driver (sqlite3, psycopg) into the
one-line message a user is shown; :func:`is_locked` tells a lock held by another program (worth
waiting for) from other faults. Passwords in URLs are masked (:func:`hil.store.urls.shown`).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from hil.errors import ConfigError
from hil.store.urls import mask_text, shown


class StoreFault(ConfigError):
    """A database that cannot be used as asked (damaged, locked, read-only, unreachable, ...):
    a one-line message; nothing was written."""


_LOCKED = ("database is locked", "database table is locked", "lock timeout", "could not obtain lock")
_SQLITE = {
    "file is not a database": "is not an SQLite database (or is encrypted or damaged)",
    "database disk image is malformed": "is damaged (database disk image is malformed)",
    "attempt to write a readonly database": "is read-only (attempt to write a readonly database)",
    "unable to open database file": "cannot be opened (unable to open database file: is its folder writable?)",
    "disk i/o error": "cannot be read or written (disk I/O error)",
    "database or disk is full": "cannot be written (database or disk is full)",
    "readonly database": "is read-only",
}


def cause(exc: BaseException) -> str:
    """The driver's own message of ``exc``, first line only, passwords masked (SQLAlchemy's
    ``[SQL: ...]`` and background lines left out)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    lines = [line.strip() for line in str(inner).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(inner).__name__
    if text.startswith("(") and ") " in text:  # "(sqlite3.OperationalError) database is locked"
        text = text.split(") ", 1)[1]
    return mask_text(text)


def _folder_read_only(db: str | Path) -> bool:
    """Whether ``db`` is an SQLite file that may be written but whose folder may not."""
    from hil.store.urls import parse_url

    try:
        url = parse_url(db)
    except ConfigError:
        return False
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return False
    file = Path(url.database).expanduser()
    return os.access(file, os.W_OK) and not os.access(file.resolve().parent, os.W_OK)


def read_only_fault(exc: BaseException) -> bool:
    """Whether ``exc`` says this connection may read but not write (a read-only SQLite file, a
    server role without the privilege): what a listing may pass over, never a writer."""
    if not isinstance(exc, DBAPIError):
        return False
    text = cause(exc).lower()
    return "readonly" in text or "read-only" in text or "permission denied" in text


def is_locked(exc: BaseException) -> bool:
    """Whether ``exc`` says another connection holds a lock this one waited for in vain."""
    if not isinstance(exc, DBAPIError):
        return False
    text = cause(exc).lower()
    return any(mark in text for mark in _LOCKED)


def describe(exc: BaseException, db: str | Path | None = None, unchanged: bool = False) -> str:
    """One line for the database fault ``exc`` of ``db``; ``unchanged`` adds that nothing was
    changed (the caller knows it: the fault came before any write)."""
    where = f"'{shown(db)}'" if db is not None else "the database"
    why = cause(exc)
    low = why.lower()
    tail = "; nothing was changed" if unchanged else ""
    if any(mark in low for mark in _LOCKED):
        return f"db: {where} is locked by another program ({why}); try again when it lets go{tail}"
    if "readonly" in low and db is not None and _folder_read_only(db):
        return (
            f"db: {where} cannot be used: its folder is not writable (SQLite keeps its -wal and -shm "
            f"files beside the database){tail}"
        )
    for mark, said in _SQLITE.items():
        if mark in low:
            return f"db: {where} {said}{tail}"
    if "does not exist" in low and "database" in low:
        why = why.split("FATAL:", 1)[-1].strip()
        return f"db: {where}: {why} (a server database is made by its administrator: createdb NAME)"
    if "connection refused" in low or "could not connect" in low or "connection failed" in low:
        return f"db: cannot connect to {where} ({why})"
    if "permission denied" in low or "insufficient privilege" in low or "must be owner" in low:
        return f"db: {where}: {why} (the role of the URL may not do this){tail}"
    if "password authentication failed" in low:
        return f"db: {where}: {why}"
    if isinstance(exc, SQLAlchemyError | OSError):
        return f"db: {where}: {why}{tail}"
    return f"db: {where}: {type(exc).__name__}: {why}{tail}"
