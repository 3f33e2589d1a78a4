"""What every ``rram-hil`` command shares: consoles, exit codes, options, one-line errors,
machine-readable output, progress, plot files.

Bad input (an option, a ``--set`` value, a station field) prints one line naming the field and
its allowed range, exits with status 2, and changes nothing. A run that fails exits 1, an
interrupted one 130.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task
from rich.text import Text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from typer.core import TyperCommand, TyperGroup, TyperOption

from hil.backend import BackendError
from hil.errors import ConfigError
from hil.safety import LimitError
from hil.store import Store
from hil.store.faults import describe, read_only_fault

out = Console()
err = Console(stderr=True)

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

PLOT_DIR = Path("rram-hil-plots")

DbOption = Annotated[
    str,
    typer.Option("--db", help="database file or SQLAlchemy URL", envvar="RRAM_HIL_DB", show_default=True),
]
StationOption = Annotated[
    str | None, typer.Option("--station", help="station YAML file (default: the built-in twin)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
CsvOption = Annotated[bool, typer.Option("--csv", help="print CSV instead of a table")]

F = TypeVar("F", bound=Callable[..., Any])


# ---------------------------------------------------------------------- help: flags as flags
def _flags_without_placeholder(params: list[Any]) -> list[Any]:
    """A flag takes no value: show it as ``--no-plot``, not ``--no-plot <bool>``."""
    for p in params:
        if isinstance(p, TyperOption) and p.is_flag and p.metavar is None:
            p.metavar = ""
    return params


class Command(TyperCommand):
    """A Typer command whose ``--help`` shows flags without a ``<bool>`` placeholder, and whose
    database faults (a damaged or locked file, a server that went away) end in one line naming
    the database (status 2), never a traceback."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_placeholder(super().get_params(ctx))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as exc:
            raise fail(describe(exc, ctx.params.get("db"))) from None


class Group(TyperGroup):
    """A Typer group whose ``--help`` shows flags without a ``<bool>`` placeholder."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_without_placeholder(super().get_params(ctx))


# ---------------------------------------------------------------------- errors
def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True, markup=True)
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


def open_store(db: str, must_exist: bool = False) -> Store:
    """The store of ``--db``; commands that only read pass ``must_exist`` (they create no database)."""
    with bad_input():
        return Store(db, must_exist=must_exist)


def parse_sets(values: list[str] | None) -> dict[str, str]:
    """``name=value`` pairs from ``--set``; a malformed one, or a name given twice, is a clear error."""
    result: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--set: '{item}' is not name=value")
        if name in result:
            raise ConfigError(
                f"--set: '{name}' is given twice ({name}={result[name]} and {name}={value.strip()}); give it once"
            )
        result[name] = value.strip()
    return result


# ---------------------------------------------------------------------- files written
def write_error(path: Path, exc: OSError) -> typer.Exit:
    """The one-line error of a file that cannot be written (the way ``report`` says it)."""
    return fail(f"output: cannot write '{path}' ({exc.strerror or exc})")


@contextmanager
def output_file(path: Path) -> Iterator[IO[str]]:
    """Open ``path`` for writing text; a missing directory or an unwritable path is a one-line error."""
    try:
        fh = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise write_error(path, exc) from None
    with fh:
        yield fh


def plot_formats() -> dict[str, str]:
    """Image formats matplotlib writes: suffix (no dot) -> description."""
    from matplotlib.backend_bases import FigureCanvasBase

    return dict(FigureCanvasBase.get_supported_filetypes())


def check_plot_file(path: Path) -> None:
    """Refuse, before anything runs, a plot file matplotlib cannot write (``p.txt``)."""
    suffix = path.suffix.lower().lstrip(".")
    formats = plot_formats()
    if suffix not in formats:
        shown = ", ".join(sorted(formats))
        raise ConfigError(f"plot: '{path}' must end in an image format ({shown})")
    if path.is_dir():
        raise ConfigError(f"plot: '{path}' is a directory")
    folder = path.parent.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folders that do not exist yet are made when it is drawn
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        raise ConfigError(f"plot: cannot write '{path}' ('{folder}' is not a writable folder)")


def draw_plot(store: Store, run_id: int, protocol: str, path: Path) -> Path | None:
    """Draw a run's plot into ``path`` (its folder made if missing) and record it; ``None`` when
    the run has nothing to plot. A path that cannot be written is a one-line error."""
    from hil.protocol import get_protocol

    proto = get_protocol(protocol)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        written = proto.plot(store, run_id, path)
    except OSError as exc:
        raise write_error(path, exc) from None
    if written is not None:
        try:
            store.add_artifact(run_id, "plot", written.resolve())
        except DBAPIError as exc:  # a read-only role or file: the plot is drawn, just not recorded
            if not read_only_fault(exc):
                raise
            store.conn.rollback()
    return written


# ---------------------------------------------------------------------- machine-readable output
def plain(value: Any) -> Any:
    """A value JSON can hold: timestamps as ISO text, NaN as null, numpy scalars as numbers."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return None if value != value else value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


def print_json(payload: Any) -> None:
    """JSON on standard output, one document, no colour (safe to pipe)."""
    sys.stdout.write(json.dumps(plain(payload), allow_nan=False, indent=2) + "\n")
    sys.stdout.flush()


def json_columns(df: Any) -> Any:
    """A copy of ``df`` whose dict/list cells are JSON text (not Python reprs), for CSV."""
    df = df.copy()
    for col in df.columns:
        if df[col].dtype == object and df[col].map(lambda v: isinstance(v, dict | list | tuple)).any():
            df[col] = df[col].map(
                lambda v: json.dumps(plain(v), allow_nan=False) if isinstance(v, dict | list | tuple) else v
            )
    return df


def print_csv(df: Any) -> None:
    json_columns(df).to_csv(sys.stdout, index=False)
    sys.stdout.flush()


def one_of(json_: bool, csv: bool) -> None:
    if json_ and csv:
        raise fail("--json and --csv: give one of them")


# ---------------------------------------------------------------------- progress
def _clock(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _count(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def _rate(rate: float | None) -> str:
    if rate is None:
        return "-/s"
    if rate >= 100:
        return f"{rate:.0f}/s"
    if rate >= 1:
        return f"{rate:.1f}/s"
    return f"{rate * 60:.2g}/min" if rate * 60 >= 0.1 else f"{rate * 3600:.2g}/h"


def _fit(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut with an ellipsis."""
    if width <= 0:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


class _State:
    """Count, total and timing of one run's progress (the clock is injectable for tests)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.description = ""
        self.total: float | None = None
        self.completed = 0.0
        self.status = ""
        self.t0 = clock()
        self._first: tuple[float, float] | None = None  # (time, count) after the first advance

    def advance(self, amount: float, status: str | None) -> None:
        self.completed += amount
        if status is not None:
            self.status = status
        if self._first is None:
            self._first = (self.clock(), self.completed)

    @property
    def elapsed(self) -> float:
        return self.clock() - self.t0

    @property
    def rate(self) -> float | None:
        """Steps per second since the first step (a resume's skipped steps do not count)."""
        if self._first is None:
            return None
        t1, c1 = self._first
        dt, dc = self.clock() - t1, self.completed - c1
        return dc / dt if dt > 0 and dc > 0 else None

    @property
    def remaining(self) -> float | None:
        rate = self.rate
        if self.total is None or rate is None:
            return None
        return max(self.total - self.completed, 0) / rate

    def count(self) -> str:
        total = "?" if self.total is None else _count(self.total)
        return f"{_count(self.completed)}/{total}"


def progress_line(state: _State, width: int, bar: bool, final: str | None = None) -> str:
    """One progress line in at most ``width`` characters, e.g.
    ``potentiation-cycling on A ━━━━╺╺╺ 12/30 40% 0:00:04 ETA 0:00:06  G 48.8 uS`` (a log line:
    no bar, the rate after the ETA: ``... ETA 0:00:06 (3.0/s)``).

    The count, the times and the rate are kept whole; the description, the bar and the status
    share what is left (the status last).
    """
    key = state.count()
    if state.total:
        key += f" {min(state.completed / state.total, 1):.0%}"
    if final is None:
        key += f" {_clock(state.elapsed)} ETA {_clock(state.remaining)}"
        if not bar:  # a log line has no bar to watch: it says how fast
            key += f" ({_rate(state.rate)})"
    else:
        key += f" {final} in {_clock(state.elapsed)}"
        if state.rate is not None:
            key += f" ({_rate(state.rate)})"
    desc, status = state.description, state.status
    avail = width - len(key)
    head = len(desc.split(" ", 1)[0])  # the protocol's name: kept whole while it fits
    d = min(len(desc), max(avail - 1, 0), 20)
    if d < len(desc) and d <= head:  # cut after the name, not inside it ("name…")
        d = min(head + 1 if head < len(desc) else head, max(avail - 1, 0))
    avail -= d + 1 if d else 0
    want = min(len(status) + 2, 18) if status else 0  # room the status would like
    n = 0
    if bar and state.total and avail - 1 >= 10:
        n = max(10, min(20, avail - 1 - want))
        avail -= n + 1
    if d < len(desc) and avail > 1:  # the rest of the description, before the status
        grow = min(len(desc) - d, max(avail - 1 - want, 0))
        d += grow
        avail -= grow
    parts = []
    if d:
        parts.append(_fit(desc, d))
    if n:
        done = int(n * min(state.completed / (state.total or 1), 1))
        parts.append("━" * done + "╺" * (n - done))
    parts.append(key)
    line = " ".join(parts)
    if status and width - len(line) - 2 >= 4:
        line += "  " + _fit(status, width - len(line) - 2)
    return line


class RichProgress:
    """The progress of one run on standard error.

    On a terminal: one line redrawn in place (a bar), at most ``width - 3`` characters so that a
    ``^C`` echoed at its end cannot wrap it into a second copy; count and times are never cut.
    Elsewhere (a pipe, a file, a CI log): plain log lines every ``every_s`` seconds (default
    ``$RRAM_HIL_PROGRESS_EVERY`` or 10) with the count, the rate and the ETA, and one last line.
    """

    def __init__(
        self,
        console: Console | None = None,
        every_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.console = console or err
        self.terminal = self.console.is_terminal and not self.console.is_dumb_terminal
        if every_s is None:
            try:
                every_s = float(os.environ.get("RRAM_HIL_PROGRESS_EVERY", "10"))
            except ValueError:
                every_s = 10.0
        self.every_s = every_s
        self.state = _State(clock)
        self._started = False
        self._stopped = False
        self._last_log: float | None = None
        self._live: Progress | None = None

    # the Progress protocol
    def start(self, total: float | None, description: str) -> None:
        if self._stopped:
            return
        self.state.total, self.state.description = total, description
        if self._started:
            return
        self._started = True
        self.state.t0 = self.state.clock()
        if self.terminal:
            self._live = Progress(_LineColumn(self), console=self.console, transient=False, expand=False)
            self._live.add_task(description, total=total)
            self._live.start()
        else:
            self._log()

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        if not self._started or self._stopped:
            return
        self.state.advance(amount, status)
        if self._live is None:
            now = self.state.clock()
            if self._last_log is None or now - self._last_log >= self.every_s:
                self._log()

    def stop(self, status: str = "completed") -> None:
        """End the display once (a second call does nothing). A completed run that stopped early
        (a threshold found, tolerance reached) ends at its real total."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if status == "completed":
            self.state.total = self.state.completed
        if self._live is not None:
            self._final = status
            self._live.refresh()
            self._live.stop()
        else:
            self.console.print(
                progress_line(self.state, self._width(), bar=False, final=status),
                highlight=False,
                markup=False,
                soft_wrap=True,
            )

    _final: str | None = None

    def _width(self) -> int:
        return max(self.console.width - 3, 20)

    def _log(self) -> None:
        self._last_log = self.state.clock()
        self.console.print(
            progress_line(self.state, self._width(), bar=False), highlight=False, markup=False, soft_wrap=True
        )


class _LineColumn(ProgressColumn):
    """The whole terminal line, laid out by :func:`progress_line`."""

    def __init__(self, owner: RichProgress) -> None:
        super().__init__()
        self.owner = owner

    def render(self, task: Task) -> Text:
        o = self.owner
        return Text(progress_line(o.state, o._width(), bar=True, final=o._final), no_wrap=True)


def progress_factory(made: list[RichProgress]) -> Callable[[], RichProgress]:
    def factory() -> RichProgress:
        p = RichProgress()
        made.append(p)
        return p

    return factory


def stop_all(progress: Sequence[RichProgress], status: str) -> None:
    for p in progress:
        p.stop(status)
