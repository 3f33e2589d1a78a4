"""The ``rram-hil`` command line.

Bad input (an option, a ``--set`` value, a station field) prints one line naming the field and
its allowed range, exits with status 2, and changes nothing. A run that fails exits 1, an
interrupted one 130.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
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
from rich.table import Table

from hil import __version__
from hil.backend import BackendError
from hil.errors import ConfigError, field_range
from hil.safety import LimitError
from hil.store import DEFAULT_DB, Store

app = typer.Typer(
    name="rram-hil",
    help="Hardware-in-the-loop experiments on RRAM devices and crossbar arrays.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
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
        self._bar.update(self._task, advance=amount, **({"status": status} if status is not None else {}))

    def stop(self) -> None:
        if self._task is not None:
            self._bar.stop()


def _finish(outcome: Any, progress: list[RichProgress]) -> None:
    for p in progress:
        p.stop()
    out.print(f"run {outcome.run_id}: {outcome.status}")
    if outcome.plot is not None:
        out.print(f"plot: {outcome.plot}")
    if outcome.status == "failed":
        raise fail(outcome.error or "the run failed", EXIT_FAILED)
    if outcome.status == "interrupted":
        raise fail(outcome.error or "the run was interrupted", EXIT_INTERRUPTED)


def _engine(store: Store, plot_dir: Path) -> tuple[Any, list[RichProgress]]:
    from hil.engine import RunEngine

    made: list[RichProgress] = []

    def factory() -> RichProgress:
        p = RichProgress()
        made.append(p)
        return p

    return RunEngine(store, progress=factory, plot_dir=plot_dir), made


@app.command()
def run(
    protocol: Annotated[str, typer.Argument(help="protocol name (see `rram-hil protocols`)")],
    station: StationOption = None,
    db: DbOption = DEFAULT_DB,
    seed: Annotated[
        int | None, typer.Option(help="twin seed (default: the station's)", min=0, max=2**32 - 1)
    ] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="protocol parameter as name=value (repeatable)")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="plot file (default: rram-hil-plots/run-ID-PROTOCOL.png)")
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="do not write a plot")] = False,
) -> None:
    """Run a protocol and print the run id."""
    from hil.engine import prepare
    from hil.station import load_station

    with bad_input():
        st = load_station(station)
        params = parse_sets(set_)
        prepare(protocol, st, params)  # validate everything before the database is touched
    store = open_store(db)
    engine, progress = _engine(store, Path("rram-hil-plots"))
    with bad_input():
        outcome = engine.run(protocol, st, params, seed=seed, plot=False if no_plot else (plot or True))
    _finish(outcome, progress)


@app.command()
def resume(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="run id")],
    db: DbOption = DEFAULT_DB,
    plot: Annotated[Path | None, typer.Option(help="plot file")] = None,
) -> None:
    """Continue an interrupted run where it stopped."""
    store = open_store(db)
    engine, progress = _engine(store, Path("rram-hil-plots"))
    with bad_input():
        outcome = engine.resume(run_id, plot=plot or True)
    _finish(outcome, progress)


@app.command()
def protocols() -> None:
    """List every protocol with its parameters, units, defaults and limits."""
    from hil.protocol import available_protocols

    for name, cls in available_protocols().items():
        table = Table(title=f"[bold]{name}[/]: {cls.title}", title_justify="left", show_lines=False)
        for col in ("parameter", "default", "unit", "allowed", "description"):
            table.add_column(col)
        for field, info in cls.Params.model_fields.items():
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            rng = field_range(cls.Params, field)
            table.add_row(field, repr(info.default), str(extra.get("unit", "")), rng, info.description or "")
        out.print(table)
        if cls.supports_resume:
            out.print("  resumable with `rram-hil resume RUN`\n")


@app.command()
def runs(db: DbOption = DEFAULT_DB) -> None:
    """List the runs in the database."""
    store = open_store(db)
    df = store.runs_df()
    table = Table()
    for col in ("id", "protocol", "status", "backend", "station", "seed", "started", "readings"):
        table.add_column(col)
    for r in df.itertuples():
        started = str(r.started_at)[:19]
        seed = "" if r.seed is None or r.seed != r.seed else str(int(r.seed))
        table.add_row(
            str(r.id), r.protocol, r.status, r.backend, r.station_name, seed, started, str(r.readings)
        )
    out.print(table)


@app.command()
def show(run_id: Annotated[int, typer.Argument(metavar="RUN")], db: DbOption = DEFAULT_DB) -> None:
    """Show one run: status, parameters, station, counts, artifacts."""
    store = open_store(db)
    with bad_input():
        info = store.run(run_id)
    table = Table(show_header=False, title=f"run {run_id}", title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    readings = store.readings_df(run_id)
    for key, value in (
        ("protocol", info.protocol),
        ("status", info.status + (f" ({info.error})" if info.error else "")),
        ("station", f"{info.station_name} ({info.backend})"),
        ("backend", json.dumps(info.backend_info)),
        ("seed", str(info.seed)),
        ("started", str(info.started_at)),
        ("ended", str(info.ended_at)),
        ("resumes", str(info.resumes)),
        ("package", info.package_version),
        ("readings", str(len(readings))),
        ("pulse records", str(len(store.pulses_df(run_id)))),
        ("parameters", json.dumps(info.parameters)),
        ("plots", ", ".join(store.artifacts(run_id, "plot")) or "-"),
    ):
        table.add_row(key, value)
    out.print(table)


class ExportFormat(StrEnum):
    csv = "csv"


class ExportTable(StrEnum):
    readings = "readings"
    pulses = "pulses"
    events = "events"


@app.command()
def export(
    run_id: Annotated[int, typer.Argument(metavar="RUN")],
    format: Annotated[ExportFormat, typer.Option("--format", help="output format")] = ExportFormat.csv,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="file (default: standard output)")
    ] = None,
    table: Annotated[ExportTable, typer.Option(help="which table")] = ExportTable.readings,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Export a run's readings (or pulses, events) as CSV."""
    store = open_store(db)
    with bad_input():
        store.run(run_id)
    df = {
        ExportTable.readings: store.readings_df,
        ExportTable.pulses: store.pulses_df,
        ExportTable.events: store.events_df,
    }[table](run_id)
    if output is None:
        df.to_csv(sys.stdout, index=False)
    else:
        df.to_csv(output, index=False)
        err.print(f"{len(df)} rows written to {output}")


@app.command()
def plot(
    run_id: Annotated[int, typer.Argument(metavar="RUN")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="PNG file")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """(Re)draw a run's plot."""
    from hil.protocol import get_protocol

    store = open_store(db)
    with bad_input():
        info = store.run(run_id)
        proto = get_protocol(info.protocol)
    path = output or Path("rram-hil-plots") / f"run-{run_id:04d}-{info.protocol}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    written = proto.plot(store, run_id, path)
    if written is None:
        raise fail(f"run {run_id} has nothing to plot", EXIT_FAILED)
    store.add_artifact(run_id, "plot", written.resolve())
    out.print(f"plot: {written}")


@app.command("check-station")
def check_station(file: Annotated[str, typer.Argument(metavar="FILE", help="station YAML file")]) -> None:
    """Validate a station file and print what it declares."""
    from hil.factory import build_backend
    from hil.station import load_station

    with bad_input():
        st = load_station(file)
        if st.backend == "twin":
            build_backend(st).close()  # resolves the preset and its overrides
        elif st.backend == "smu-matrix":
            from hil.smu_matrix_config import plan_smu_matrix

            plan_smu_matrix(st)  # instruments, options and routing, without connecting
    out.print(f"station '{st.name}' is valid: backend {st.backend}, {len(st.arrays)} array(s)")
    table = Table()
    for col in ("array", "rows", "cols", "diameter (nm)", "area (m^2)"):
        table.add_column(col)
    for a in st.arrays:
        spec = a.spec()
        table.add_row(
            a.name, str(a.rows), str(a.cols), f"{spec.diameter_m * 1e9:.1f}", f"{spec.device_area_m2:.3e}"
        )
    out.print(table)
    out.print("limits: " + ", ".join(f"{k}={v:g}" for k, v in st.limits.model_dump().items()))
    for name, inst in st.instruments.items():
        out.print(f"instrument {name}: {inst.model} at {inst.resource}")


from hil.cli_emulate import emulate  # noqa: E402 - registered after the commands it uses

app.command("emulate")(emulate)


def _register_extensions() -> None:
    from hil.cli_training import register as register_training

    register_training(app)


_register_extensions()


def version_callback(value: bool) -> None:
    if value:
        out.print(f"rram-hil {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """Hardware-in-the-loop experiments on RRAM devices and crossbar arrays."""


from hil import cli_analysis  # noqa: E402  (the analysis commands use the helpers above)

app.command()(cli_analysis.analyze)
app.command()(cli_analysis.report)
app.command()(cli_analysis.calibrate)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    app()


if __name__ == "__main__":
    main()
