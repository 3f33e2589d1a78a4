"""The run and database commands: ``run``, ``resume``, ``abort``, ``protocols``, ``runs``, ``show``,
``export``, ``plot``, ``check-station``.

Tables fit the terminal (80 columns included): the key columns (a run's id, protocol, status and
readings; a parameter's name, default and unit) are never cut, secondary ones are dropped or
wrapped. ``--json`` (and ``--csv`` where the output is a table) prints machine-readable output.
"""

from __future__ import annotations

import json
import sys
import textwrap
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hil.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    PLOT_DIR,
    Command,
    CsvOption,
    DbOption,
    JsonOption,
    RichProgress,
    StationOption,
    bad_input,
    check_plot_file,
    draw_plot,
    err,
    fail,
    json_columns,
    one_of,
    open_store,
    out,
    output_file,
    parse_sets,
    plain,
    print_csv,
    print_json,
    progress_factory,
    stop_all,
)
from hil.engine import default_plot_path
from hil.errors import ConfigError
from hil.store import DEFAULT_DB, Store, validation_store

PlotOption = Annotated[
    Path | None,
    typer.Option(
        "--plot",
        metavar="FILE",
        help="plot file (default: one in rram-hil-plots/ named by database, run and protocol)",
    ),
]
NoPlotOption = Annotated[bool, typer.Option("--no-plot", help="do not write a plot")]


def _plot_choice(plot: Path | None, no_plot: bool) -> None:
    if plot is not None and no_plot:
        raise ConfigError("--plot and --no-plot: give one of them")
    if plot is not None:
        check_plot_file(plot)


def _finish(
    outcome: Any, progress: list[RichProgress], store: Store, plot: Path | None, no_plot: bool
) -> None:
    stop_all(progress, outcome.status)
    out.print(f"run {outcome.run_id}: {outcome.status}", highlight=False)
    if not no_plot:
        info = store.run(outcome.run_id)
        path = plot or default_plot_path(store, outcome.run_id, info.protocol)
        written = draw_plot(store, outcome.run_id, info.protocol, path)
        if written is not None:
            out.print(f"plot: {written}", highlight=False, soft_wrap=True)
    if outcome.status == "failed":
        raise fail(outcome.error or "the run failed", EXIT_FAILED)
    if outcome.status == "interrupted":
        raise fail(outcome.error or "the run was interrupted", EXIT_INTERRUPTED)


def _engine(store: Store) -> tuple[Any, list[RichProgress]]:
    from hil.engine import RunEngine

    made: list[RichProgress] = []
    return RunEngine(store, progress=progress_factory(made), plot_dir=PLOT_DIR), made


def run(
    protocol: Annotated[str, typer.Argument(help="protocol name (see `rram-hil protocols`)")],
    station: StationOption = None,
    db: DbOption = DEFAULT_DB,
    seed: Annotated[
        int | None, typer.Option(help="twin seed (default: the station's)", min=0, max=2**32 - 1)
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="protocol parameter (repeatable, each name once)"),
    ] = None,
    plot: PlotOption = None,
    no_plot: NoPlotOption = False,
) -> None:
    """Run a protocol and print the run id."""
    from hil.engine import prepare
    from hil.station import load_station

    with bad_input():
        _plot_choice(plot, no_plot)
        st = load_station(station)
        params = parse_sets(set_)
        with validation_store(db) as checks:  # references checked; nothing is written on failure
            prepare(protocol, st, params, store=checks)
    store = open_store(db)
    engine, progress = _engine(store)
    with bad_input():
        outcome = engine.run(protocol, st, params, seed=seed, plot=False)
    _finish(outcome, progress, store, plot, no_plot)


def resume(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="run id")],
    db: DbOption = DEFAULT_DB,
    plot: PlotOption = None,
    no_plot: NoPlotOption = False,
) -> None:
    """Continue an interrupted run where it stopped."""
    from protocols.training.search import SEARCH_RUN

    with bad_input():
        _plot_choice(plot, no_plot)
    store = open_store(db, must_exist=True)
    with bad_input():
        if store.run(run_id).protocol == SEARCH_RUN:  # a search is a sweep of runs, not a protocol
            raise ConfigError(
                f"resume: run {run_id} is a choi2021 search; continue it with "
                f"'rram-hil reproduce choi2021 --resume-search {run_id}'"
            )
    engine, progress = _engine(store)
    with bad_input():
        outcome = engine.resume(run_id, plot=False)
    _finish(outcome, progress, store, plot, no_plot)


def abort(
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="run id")],
    db: DbOption = DEFAULT_DB,
    wait: Annotated[
        float, typer.Option("--wait", min=0, metavar="SECONDS", help="how long to wait for the run to stop")
    ] = 30.0,
) -> None:
    """Ask a running run to stop, wherever it runs (another process, another machine on --db)."""
    import getpass
    import os
    import socket

    store = open_store(db, must_exist=True)
    origin = {"via": "cli", "user": getpass.getuser(), "host": socket.gethostname(), "pid": os.getpid()}
    with bad_input():
        store.request_abort(run_id, origin)
        status = store.wait_until_ended(run_id, wait)
    store.close()
    if status == "running":
        out.print(f"abort: requested; run {run_id} has not stopped yet (it stops at its next commit)")
        return
    out.print(f"run {run_id} {status}")


# ---------------------------------------------------------------------- tables that fit
def _natural_width(table: Table) -> int:
    """The width ``table`` takes with nothing wrapped."""
    return out.measure(table, options=out.options.update_width(100_000)).maximum


def fitting_table(
    columns: list[tuple[str, bool]], rows: list[list[str]], width: int, **table_args: Any
) -> tuple[Table, list[str]]:
    """A table of the key columns (``True``) and as many secondary ones, in order, as fit in
    ``width`` unwrapped; key cells never wrap or get cut. Returns the table and the dropped names."""
    keys = [i for i, (_, key) in enumerate(columns) if key]
    chosen = list(keys)

    def build(idx: list[int]) -> Table:
        table = Table(**table_args)
        for i in sorted(idx):
            name, key = columns[i]
            table.add_column(name, no_wrap=key, overflow="fold")
        for row in rows:
            table.add_row(*(row[i] for i in sorted(idx)))
        return table

    for i, (_, key) in enumerate(columns):
        if not key and _natural_width(build([*chosen, i])) <= width:
            chosen.append(i)
    dropped = [columns[i][0] for i in range(len(columns)) if i not in chosen]
    return build(chosen), dropped


def _hidden_note(dropped: list[str], what: str) -> None:
    if dropped:
        out.print(
            Text(f"(not shown at this width: {', '.join(dropped)}; see {what})", style="dim"),
            soft_wrap=True,
        )


# ---------------------------------------------------------------------- protocols
def protocols(
    name: Annotated[
        str | None, typer.Argument(metavar="[PROTOCOL]", help="one protocol (default: all)")
    ] = None,
    station: Annotated[
        str | None,
        typer.Option("--station", help="station YAML file: show its effective limits next to each parameter"),
    ] = None,
    json_: JsonOption = False,
    csv: CsvOption = False,
) -> None:
    """List every protocol with its parameters, units, defaults and limits."""
    from hil.cli.listing import parameter_records, public
    from hil.protocol import available_protocols, get_protocol
    from hil.station import load_station

    one_of(json_, csv)
    limits = None
    with bad_input():
        if station is not None:
            limits = load_station(station).limits
        found = {name: get_protocol(name)} if name else available_protocols()
    listing: list[dict[str, Any]] = []
    for proto_name, cls in found.items():
        records = parameter_records(cls.Params, limits)
        listing.append(
            {
                "name": proto_name,
                "title": cls.title,
                "resumable": bool(cls.supports_resume),
                "parameters": records,
            }
        )
    if json_:
        print_json([{**p, "parameters": [public(r) for r in p["parameters"]]} for p in listing])
        return
    if csv:
        import pandas as pd

        flat = [{"protocol": p["name"], **public(r)} for p in listing for r in p["parameters"]]
        print_csv(pd.DataFrame(flat))
        return
    with_station = limits is not None
    as_table = all(_fits_as_table(p, with_station) for p in listing)  # one layout for the whole list
    for p in listing:
        _print_protocol(p, with_station, as_table)


def _header(with_station: bool) -> list[str]:
    return ["parameter", "default", "unit", "allowed"] + (["station (effective)"] if with_station else [])


def _full_rows(records: list[dict[str, Any]], with_station: bool) -> list[list[str]]:
    return [
        [r["name"], default_cell(r), r["unit"], r["allowed"]]
        + ([_station_cell(r, short=False)] if with_station else [])
        for r in records
    ]


def _fits_as_table(p: dict[str, Any], with_station: bool) -> bool:
    """A table fits when every figure is whole and the description keeps 30 columns."""
    header = _header(with_station)
    full = _full_rows(p["parameters"], with_station)
    fixed = [max(len(h), *(len(row[i]) for row in full)) for i, h in enumerate(header)]
    return sum(fixed) + 3 * (len(header) + 1) + 1 + 30 <= out.width


def _print_protocol(p: dict[str, Any], with_station: bool, as_table: bool) -> None:
    records = p["parameters"]
    out.print(Text.assemble((p["name"], "bold"), f": {p['title']}"), soft_wrap=False)
    header = _header(with_station)
    full = _full_rows(records, with_station)
    if as_table:
        table = Table(show_lines=False)
        for h in header:
            table.add_column(h, no_wrap=True)
        table.add_column("description", ratio=1, min_width=30)
        for row, r in zip(full, records, strict=True):
            table.add_row(*row, r["description"])
        out.print(table)
    else:  # a list: one line of figures per parameter, its description under it
        rows = [
            [r["name"], default_cell(r), r["unit"], r["_allowed_short"]]
            + ([r.get("_effective_short") or "-"] if with_station else [])
            for r in records
        ]
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
        widths[1] = min(widths[1], 18)

        def line(cells: list[str]) -> str:
            """The figures of one parameter; a last cell too long for the width continues under
            itself, broken between words."""
            head = "  " + "".join(c.ljust(w) + "  " for c, w in zip(cells[:-1], widths[:-1], strict=True))
            parts = textwrap.wrap(cells[-1], max(out.width - len(head), 16), break_on_hyphens=False) or [""]
            return "\n".join([(head + parts[0]).rstrip()] + [" " * len(head) + part for part in parts[1:]])

        out.print(Text(line(header), style="bold"), soft_wrap=True)
        for row, r in zip(rows, records, strict=True):
            out.print(line(row), highlight=False, markup=False, soft_wrap=True)
            desc = r["description"]
            if with_station and r.get("station_limit"):
                desc += f" [station: {r['station_limit']}]" if desc else f"[station: {r['station_limit']}]"
            if desc:
                out.print(Padding(Text(desc, style="dim"), (0, 0, 0, 6), expand=False))
    if p["resumable"]:
        out.print("  resumable with `rram-hil resume RUN`\n", highlight=False)
    else:
        out.print()


def default_cell(record: dict[str, Any]) -> str:
    from hil.cli.listing import default_text

    return default_text(record["default"])


def _station_cell(record: dict[str, Any], short: bool) -> str:
    if not record.get("station_limit"):
        return "-"
    if short:
        return str(record.get("_effective_short") or "-")
    return f"{record['effective']} ({record['station_limit']})"


# ---------------------------------------------------------------------- runs, show
_RUN_COLUMNS = (
    ("id", True),
    ("protocol", True),
    ("status", True),
    ("readings", True),
    ("started", False),
    ("station", False),
    ("seed", False),
    ("backend", False),
)


def runs(db: DbOption = DEFAULT_DB, json_: JsonOption = False, csv: CsvOption = False) -> None:
    """List the runs in the database."""
    one_of(json_, csv)
    store = open_store(db, must_exist=True)
    df = store.runs_df()
    if json_:
        print_json(df.to_dict("records"))
        return
    if csv:
        print_csv(df)
        return
    rows = []
    for r in df.itertuples():
        started = str(r.started_at)[:16]
        seed = "" if r.seed is None or r.seed != r.seed else str(int(r.seed))
        values = {
            "id": str(r.id),
            "protocol": r.protocol,
            "status": r.status,
            "readings": str(r.readings),
            "started": started,
            "station": r.station_name,
            "seed": seed,
            "backend": r.backend,
        }
        rows.append([values[c] for c, _ in _RUN_COLUMNS])
    table, dropped = fitting_table(list(_RUN_COLUMNS), rows, out.width)
    out.print(table)
    _hidden_note(dropped, "--json or --csv")


def show(
    run_id: Annotated[int, typer.Argument(metavar="RUN")],
    db: DbOption = DEFAULT_DB,
    json_: JsonOption = False,
) -> None:
    """Show one run: status, parameters, station, counts, artifacts."""
    import dataclasses

    store = open_store(db, must_exist=True)
    with bad_input():
        info = store.run(run_id)
    readings = store.count_readings(run_id)  # counted in SQL: no reading is loaded
    pulses = store.count_pulses(run_id)
    plots = store.artifacts(run_id, "plot")
    if json_:
        print_json(
            {**dataclasses.asdict(info), "readings": readings, "pulse_records": pulses, "plots": plots}
        )
        return
    table = Table(show_header=False, title=f"run {run_id}", title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for key, value in (
        ("protocol", info.protocol),
        ("status", info.status + (f" ({info.error})" if info.error else "")),
        ("station", f"{info.station_name} ({info.backend})"),
        ("backend", json.dumps(plain(info.backend_info))),
        ("seed", str(info.seed)),
        ("started", str(info.started_at)),
        ("ended", str(info.ended_at)),
        ("resumes", str(info.resumes)),
        ("package", info.package_version),
        ("readings", str(readings)),
        ("pulse records", str(pulses)),
        ("parameters", json.dumps(plain(info.parameters))),
        ("plots", ", ".join(plots) or "-"),
    ):
        table.add_row(key, Text(value))
    out.print(table)


# ---------------------------------------------------------------------- export, plot
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
    """Export a run's readings (or pulses, events) as CSV; JSON columns (an event's detail) as JSON."""
    store = open_store(db, must_exist=True)
    with bad_input():
        store.run(run_id)
    if output is None:
        _write_csv(store, run_id, table, sys.stdout)
        sys.stdout.flush()
        return
    with output_file(output) as fh:
        rows = _write_csv(store, run_id, table, fh)
    err.print(f"{rows} rows written to {output}", highlight=False)


EXPORT_CHUNK_ROWS = 50_000


def _write_csv(store: Store, run_id: int, table: ExportTable, fh: Any) -> int:
    """Write a run's table to ``fh`` as CSV and return the rows written. Readings and pulses are
    streamed ``EXPORT_CHUNK_ROWS`` at a time (memory stays at one chunk; the bytes are those of the
    whole table's ``to_csv``); events, a handful per run, go through ``json_columns`` whole."""
    if table == ExportTable.events:
        df = json_columns(store.events_df(run_id))
        df.to_csv(fh, index=False)
        return len(df)
    chunks = (store.iter_readings if table == ExportTable.readings else store.iter_pulses)(
        run_id, EXPORT_CHUNK_ROWS
    )
    rows = 0
    for chunk in chunks:  # no JSON columns in readings or pulses
        chunk.to_csv(fh, index=False, header=rows == 0)
        rows += len(chunk)
    if rows == 0:  # an empty run: the header line, as the whole table's to_csv writes it
        empty = store.readings_df(run_id) if table == ExportTable.readings else store.pulses_df(run_id)
        empty.to_csv(fh, index=False)
    return rows


def plot(
    run_id: Annotated[int, typer.Argument(metavar="RUN")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="image file (default: rram-hil-plots/DB-run-ID-PROTOCOL.png)"),
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """(Re)draw a run's plot."""
    from hil.protocol import get_protocol

    with bad_input():
        if output is not None:
            check_plot_file(output)
    store = open_store(db, must_exist=True)
    with bad_input():
        info = store.run(run_id)
        get_protocol(info.protocol)
    path = output or default_plot_path(store, run_id, info.protocol)
    written = draw_plot(store, run_id, info.protocol, path)
    if written is None:
        raise fail(f"run {run_id} has nothing to plot", EXIT_FAILED)
    out.print(f"plot: {written}", highlight=False, soft_wrap=True)


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
        table.add_column(col, no_wrap=col == "array")
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
    for fn in (run, resume, abort, protocols, runs, show, export, plot):
        app.command(cls=Command)(fn)
    app.command("check-station", cls=Command)(check_station)
