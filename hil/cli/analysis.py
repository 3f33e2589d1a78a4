"""``rram-hil analyze``, ``report`` and ``calibrate``: extraction, HTML reports, twin calibration.

The analysis itself lives in :mod:`protocols.analysis.extract`, :mod:`protocols.analysis.report` and
:mod:`protocols.analysis.preset_fit` (pure data analysis on the store); this module is the command line,
and :mod:`hil.api` (which the Python API shares) validates a calibrated preset against the twin's preset model
(:func:`hil.api.write_preset`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from hil.api import calibrate_store, check_preset_output
from hil.api import write_preset as write_preset  # kept importable from here
from hil.cli.common import (
    Command,
    CsvOption,
    DbOption,
    bad_input,
    err,
    fail,
    one_of,
    open_store,
    out,
    print_csv,
)
from hil.store import DEFAULT_DB

RunsArgument = Annotated[list[int], typer.Argument(metavar="RUN [RUN ...]", help="run ids")]

_PREFIX = (
    (1e-15, "f"),
    (1e-12, "p"),
    (1e-9, "n"),
    (1e-6, "u"),
    (1e-3, "m"),
    (1.0, ""),
    (1e3, "k"),
    (1e6, "M"),
)


def fmt_si(value: Any, unit: str) -> str:
    """``3.1e-06, 'S'`` -> ``3.1 uS``; unitless numbers in 4 significant digits."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int) and not unit:
        return str(value)
    v = float(value)
    if not math.isfinite(v):
        return "nan"
    if not unit or unit == "s" and abs(v) >= 1e3:
        return f"{v:.4g}{' ' + unit if unit else ''}"
    scale, prefix = 1.0, ""
    for s, p in _PREFIX:
        if abs(v) >= s:
            scale, prefix = s, p
    return f"{v / scale:.4g} {prefix}{unit}"


def _analysis_table(result: Any) -> Table:
    table = Table(title=f"run {result.run_id}: {result.protocol}", title_justify="left")
    table.add_column("quantity", no_wrap=True)
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("description")
    for row in result.summary_df().itertuples():
        table.add_row(row.quantity, fmt_si(row.value, row.unit), row.description)
    return table


def analyze(
    runs: RunsArgument,
    db: DbOption = DEFAULT_DB,
    json_: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
    csv: CsvOption = False,
) -> None:
    """Extract device parameters from runs (Gmin, Gmax, states, step, sigma/mu, nonlinearity, ...)."""
    from protocols.analysis.extract import analyze as extract

    one_of(json_, csv)
    store = open_store(db, must_exist=True)
    results = []
    with bad_input():
        for run_id in runs:
            results.append(extract(store, run_id))
    if json_:
        payload = [r.to_json() for r in results]
        out.print_json(json.dumps(payload[0] if len(payload) == 1 else payload, allow_nan=False))
        return
    if csv:  # one row per run and quantity: run_id, protocol, quantity, value, unit, description
        import pandas as pd

        frames = [r.summary_df().assign(run_id=r.run_id, protocol=r.protocol) for r in results]
        table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        cols = ["run_id", "protocol", "quantity", "value", "unit", "description"]
        print_csv(table.reindex(columns=cols))
        return
    for result in results:
        out.print(_analysis_table(result))
        per_array = result.tables.get("per_array")
        if per_array is not None and len(per_array) > 1:
            table = Table(title="per array", title_justify="left")
            cols = [
                c
                for c in ("array", "area_m2", "g_min_S", "g_max_S", "step_mean_S", "n_states")
                if c in per_array
            ]
            for c in cols:
                table.add_column(c)
            for rec in per_array[cols].to_dict("records"):
                table.add_row(
                    *(fmt_si(rec[c], c.rsplit("_", 1)[-1] if c.endswith("_S") else "") for c in cols)
                )
            out.print(table)


def report(
    runs: RunsArgument,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="HTML file (default: report-RUN.html)")
    ] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write a self-contained HTML report (plots embedded) of one or more runs."""
    from protocols.analysis.report import build_report

    store = open_store(db, must_exist=True)
    with bad_input():
        for run_id in runs:
            store.run(run_id)
        text = build_report(store, runs)
    path = output or Path(f"report-{'-'.join(str(r) for r in runs)}.html")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"output: cannot write '{path}' ({exc.strerror})") from None
    out.print(f"report: {path} ({len(text) / 1e6:.2f} MB)")


def calibrate(
    runs: RunsArgument,
    output: Annotated[Path, typer.Option("-o", "--output", help="preset YAML file to write")],
    base: Annotated[
        str, typer.Option(help="preset the fit starts from (name or YAML file)")
    ] = "mo_tiox_choi2021",
    name: Annotated[str | None, typer.Option(help="preset name (default: the file's stem)")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Fit the twin's device parameters from measured runs and write a preset any twin station loads."""
    with bad_input():
        check_preset_output(output)
    store = open_store(db, must_exist=True)
    with bad_input():
        calibration = calibrate_store(store, runs, output, base, name)
    preset, base_preset, result = calibration.preset, calibration.base, calibration.fit
    table = Table(title=f"preset '{preset.name}' written to {output}", title_justify="left")
    for col in ("parameter", "fitted", f"base ({base_preset.name})", "from"):
        table.add_column(col)
    for key in result.values:
        table.add_row(
            key, _short(getattr(preset, key)), _short(getattr(base_preset, key)), result.sources.get(key, "")
        )
    out.print(table)
    err.print(f"use it: twin: {{preset: {output}}} in a station file")


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def register(app: typer.Typer) -> None:
    """Add ``analyze``, ``report`` and ``calibrate`` to ``app``."""
    app.command(cls=Command)(analyze)
    app.command(cls=Command)(report)
    app.command(cls=Command)(calibrate)
