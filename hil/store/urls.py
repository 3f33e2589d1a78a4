"""Database URLs: what ``--db`` may be, and how it is shown.

``--db`` is a file path (an SQLite database, ``rram-hil.sqlite``) or a SQLAlchemy URL:
``sqlite:///path``, ``postgresql+psycopg://user[:password]@host[:port]/dbname`` (``postgresql://``
and ``postgres://`` mean the same: psycopg 3 is the driver rram-hil installs). A URL is checked
before anything connects: an empty value, a malformed URL, an unknown kind (``foo://``) or a
driver that is not installed (``postgresql+pg8000://`` without pg8000) is a one-line
:class:`~hil.errors.ConfigError`.

A password is never shown: :func:`shown` masks it (``***``) in a URL, :func:`mask_text` in any
text (an error message, a traceback), :func:`mask_values` in JSON-like values (a station
snapshot, a run's parameters) before they are stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from hil.errors import ConfigError

#: the kinds of database this software is tested with, as a user would write them
KNOWN = "a file path, sqlite:///PATH or postgresql+psycopg://USER@HOST/DBNAME"
#: drivers that the bare dialect name stands for here
_DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg"}
MASK = "***"
# scheme://user:PASSWORD@ (the password may hold anything but '@', '/' and white space)
_SECRET = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s'\"]*:)(?P<secret>[^@/\s'\"]+)(?P<at>@)")


def mask_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    return _SECRET.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)


def mask_values(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with every URL password masked."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: mask_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_values(v) for v in value]
    return value


def shown(db: str | Path) -> str:
    """``db`` as the user may be shown it: a path as given, a URL with its password masked."""
    value = str(db)
    if "://" not in value:
        return value
    try:
        return make_url(value).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL: show it with anything like a password masked
        return mask_text(value)


def parse_url(db: str | Path) -> URL:
    """The SQLAlchemy URL of ``db`` (see the module's docstring); raises a one-line
    :class:`ConfigError` for an empty value, a malformed URL, an unknown kind or a missing driver."""
    text = str(db)
    if not text.strip():
        raise ConfigError(f"db: empty; give {KNOWN}")
    if "://" not in text:
        return URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        url = make_url(text)
    except ArgumentError as exc:
        raise ConfigError(f"db: '{shown(text)}' is not a valid database URL ({exc}); give {KNOWN}") from None
    if url.drivername in _DEFAULT_DRIVERS:
        url = url.set(drivername=_DEFAULT_DRIVERS[url.drivername])
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise ConfigError(
            f"db: '{shown(text)}' is no kind of database rram-hil knows ('{url.drivername}'); give {KNOWN}"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        missing = getattr(exc, "name", None) or url.get_driver_name()
        raise ConfigError(
            f"db: '{shown(text)}' needs the Python driver '{missing}', which is not installed "
            "(install it, or use postgresql+psycopg://: psycopg comes with rram-hil)"
        ) from None
    if url.get_backend_name() != "sqlite" and not url.database:
        raise ConfigError(f"db: '{shown(text)}' names no database (.../DBNAME at the end); give {KNOWN}")
    return url


def database_url(db: str | Path) -> str:
    """A SQLAlchemy URL from a URL or a file path (``rram-hil.sqlite`` -> ``sqlite:///rram-hil.sqlite``),
    its password kept (pass it to the engine, never show it: :func:`shown`)."""
    text = str(db)
    if "://" not in text and text.strip():
        return f"sqlite:///{Path(text).expanduser()}"
    return parse_url(db).render_as_string(hide_password=False)
