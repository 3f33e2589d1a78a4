"""The database commands: ``rram-hil db info``, ``rram-hil db upgrade`` and ``rram-hil db copy``.

A database without a schema version (written by rram-hil 0.1.0) or at an older version is refused
by every other command with one line naming ``rram-hil db upgrade``; these two open it whatever its
version. Neither creates a database: a ``--db`` that does not exist is a one-line error (status 2).
"""

from __future__ import annotations

from typing import Annotated

import typer

from hil.cli.common import Command, DbOption, Group, bad_input, out
from hil.store import DEFAULT_DB, database_info, upgrade_database

db_app = typer.Typer(
    name="db",
    help="Schema version, migrations and copies of a database.",
    no_args_is_help=True,
    add_completion=False,
    cls=Group,
)


def _size(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit} ({n:,} bytes)"
    return f"{n} bytes"


def _version(v: str | None) -> str:
    return "none (rram-hil 0.1.0)" if v is None else v


@db_app.command("info", cls=Command)
def info(db: DbOption = DEFAULT_DB) -> None:
    """Schema version (and the head this rram-hil writes), runs, readings and size."""
    with bad_input():
        found = database_info(db)
    if found.up_to_date:
        state = "up to date"
    elif found.version is None or found.version < found.head:
        state = f"older: run `rram-hil db upgrade --db {found.db}`"
    else:
        state = "newer than this rram-hil: upgrade rram-hil to use it"
    lines = [
        f"database: {found.db}",
        f"schema version: {_version(found.version)}; head {found.head}: {state}",
        f"runs: {found.runs}",
        f"readings: {found.readings}",
        f"size: {_size(found.size_bytes)}",
    ]
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True, markup=False)


@db_app.command("upgrade", cls=Command)
def upgrade(db: DbOption = DEFAULT_DB) -> None:
    """Migrate a database to this rram-hil's schema version, keeping every row.

    One transaction: all of it, or nothing changed."""
    with bad_input():
        done = upgrade_database(db)
        found = database_info(db)
    if not done.changed:
        out.print(
            f"{found.db}: already at schema version {done.after} (head); nothing to do",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        return
    out.print(
        f"{found.db}: upgraded from schema version {_version(done.before)} to {done.after} "
        f"({found.runs} runs, {found.readings} readings kept)",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``rram-hil db ...`` to ``app``."""
    app.add_typer(db_app, name="db")


def _ids(pairs: dict[int, int]) -> str:
    return ", ".join(f"{a}->{b}" for a, b in pairs.items())


@db_app.command("copy", cls=Command)
def copy(
    src: Annotated[str, typer.Argument(metavar="SRC", help="database to copy from (file or URL; only read)")],
    dst: Annotated[str, typer.Argument(metavar="DST", help="database to copy into (file or URL)")],
) -> None:
    """Copy the runs of SRC that DST does not have yet (a bench's file into the lab's server).

    A run is the same run when the host, process and start time that began it match; one
    already in DST, unchanged, is skipped, so copying twice doubles nothing. Each run is copied
    whole in one transaction; a run still running is left for later."""
    from hil.store.copy import copy_database

    with bad_input():
        done = copy_database(src, dst)
    lines = [
        f"{done.src} -> {done.dst}: {len(done.copied)} runs copied, {len(done.updated)} updated, "
        f"{len(done.skipped)} already there ({done.readings} readings, {done.pulses} pulses written)"
    ]
    if done.copied:
        lines.append(f"copied (SRC id->DST id): {_ids(done.copied)}")
    if done.updated:
        lines.append(f"updated, changed since the last copy: {_ids(done.updated)}")
    if done.running:
        lines.append(f"still running, not copied: {', '.join(map(str, done.running))}")
    for line in lines:
        out.print(line, highlight=False, soft_wrap=True, markup=False)
