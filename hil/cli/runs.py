"""The run and database commands: ``run``, ``resume``, ``protocols``, ``runs``, ``show``,
``export``, ``plot``, ``check-station``."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hil.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    DbOption,
    RichProgress,
    StationOption,
    bad_input,
    err,
    fail,
    open_store,
    out,
    parse_sets,
)
from hil.errors import field_range
from hil.store import DEFAULT_DB, Store


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


def check_station(file: Annotated[str, typer.Argument(metavar="FILE", help="station YAML file")]) -> None:
    """Validate a station file and print what it declares."""
    from hil.backends.registry import backend_kind
    from hil.station import load_station

    with bad_input():
        st = load_station(file)
        backend_kind(st.backend).check(st)  # presets, options and routing, without connecting
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


def register(app: typer.Typer) -> None:
    """Add the run and database commands to ``app``."""
    app.command()(run)
    app.command()(resume)
    app.command()(protocols)
    app.command()(runs)
    app.command()(show)
    app.command()(export)
    app.command()(plot)
    app.command("check-station")(check_station)
