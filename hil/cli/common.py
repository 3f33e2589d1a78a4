"""What every ``rram-hil`` command shares: consoles, exit codes, options, one-line errors.

Bad input (an option, a ``--set`` value, a station field) prints one line naming the field and
its allowed range, exits with status 2, and changes nothing. A run that fails exits 1, an
interrupted one 130.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hil.backend import BackendError
from hil.errors import ConfigError
from hil.safety import LimitError
from hil.store import Store

out = Console()
err = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

DbOption = Annotated[
    str,
    typer.Option("--db", help="database file or SQLAlchemy URL", envvar="RRAM_HIL_DB", show_default=True),
]
StationOption = Annotated[
    str | None, typer.Option("--station", help="station YAML file (default: the built-in twin)")
]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def bad_input() -> Iterator[None]:
    """Turn bad-input exceptions into a one-line error and exit status 2, and an instrument
    that fails before a run starts (nothing recorded) into a one-line error and status 1."""
    try:
        yield
    except (ConfigError, LimitError) as exc:
        raise fail(str(exc)) from None
    except ValidationError as exc:
        raise fail(str(exc).splitlines()[0]) from None
    except BackendError as exc:
        raise fail(f"instrument: {exc}", EXIT_FAILED) from None


def open_store(db: str) -> Store:
    with bad_input():
        return Store(db)


def parse_sets(values: list[str] | None) -> dict[str, str]:
    """``name=value`` pairs from ``--set``; a malformed one is a clear error."""
    result: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set: '{item}' is not name=value")
        result[name.strip()] = value.strip()
    return result


class RichProgress:
    """A rich progress bar for one run."""

    def __init__(self) -> None:
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=err,
            transient=False,
        )
        self._task: Any = None

    def start(self, total: float | None, description: str) -> None:
        if self._task is None:
            self._bar.start()
            self._task = self._bar.add_task(description, total=total, status="")
        else:
            self._bar.update(self._task, total=total, description=description)

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        if self._task is None:
            return
        if status is None:
            self._bar.update(self._task, advance=amount)
        else:
            self._bar.update(self._task, advance=amount, status=status)

    def stop(self) -> None:
        if self._task is not None:
            self._bar.stop()
