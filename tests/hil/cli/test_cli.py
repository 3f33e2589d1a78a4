"""The rram-hil command line, as a user runs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.store import Store
from tests.helpers import wait_for_readings

runner = CliRunner()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    return tmp_path


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_main_job_defaults(workdir: Path) -> None:
    """`rram-hil run potentiation-cycling`: 1,500 readings in ./rram-hil.sqlite and a plot."""
    res = cli("run", "potentiation-cycling")
    assert res.exit_code == 0, res.output
    assert "run 1: completed" in res.output
    store = Store(workdir / "rram-hil.sqlite")
    df = store.readings_df(1)
    assert len(df) == 1500
    assert df.groupby("cycle").size().eq(50).all() and df.cycle.nunique() == 30
    # plots are named <db-stem>-run-ID-PROTOCOL.png, so two databases never overwrite each other
    plot = workdir / "rram-hil-plots" / "rram-hil-run-0001-potentiation-cycling.png"
    assert plot.exists() and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_set_values_station_db_and_seed(workdir: Path) -> None:
    res = cli("run", "potentiation-cycling", "--db", "lab.sqlite", "--seed", "4",
              "--set", "cycles=2", "--set", "pulses=10", "--set", "cells=0:2,0:2", "--no-plot")  # fmt: skip
    assert res.exit_code == 0, res.output
    store = Store(workdir / "lab.sqlite")
    df = store.readings_df(1)
    assert len(df) == 2 * 10 * 4 and store.run(1).seed == 4
    assert not (workdir / "rram-hil-plots").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--set", "amplitude_V=99"],
            "amplitude_V: Input should be less than or equal to 20 (got '99'; allowed: 0 < amplitude_V <= 20 V)",
        ),
        (
            ["--set", "amplitude_V=6"],
            "amplitude_V = 6 is outside the allowed range [-5, 5] V (station limit max_abs_voltage_V)",
        ),
        (["--set", "pulses=many"], "pulses: Input should be a valid integer"),
        (["--set", "pulses"], "--set: 'pulses' is not name=value"),
        (["--set", "colour=red"], "colour: unknown name (known: array, cells"),
        (["--station", "missing.yaml"], "station: file 'missing.yaml' does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(workdir: Path, args, message) -> None:
    res = cli("run", "potentiation-cycling", *args)
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert message in text
    assert text.startswith("error:") and len(res.output.strip().splitlines()) <= 3  # one line (wrapped)
    assert not (workdir / "rram-hil.sqlite").exists()


def test_bad_station_field_named(workdir: Path) -> None:
    (workdir / "st.yaml").write_text(
        "name: bench\nbackend: twin\narrays:\n  - {name: A, rows: -3, cols: 4, diameter_m: 1.0e-6}\n"
    )
    res = cli("check-station", "st.yaml")
    assert res.exit_code == 2
    text = " ".join(res.output.split())
    assert (
        "arrays.0.rows: Input should be greater than or equal to 1 (got -3; allowed: 1 <= rows <= 8192)"
        in text
    )
    (workdir / "st2.yaml").write_text(
        "name: bench\nbackend: twin\narrays:\n  - {name: A, rows: 3, cols: 4}\n"
    )
    res = cli("check-station", "st2.yaml")
    assert res.exit_code == 2 and "exactly one of diameter_m or area_m2" in res.output
    (workdir / "st3.yaml").write_text(
        "name: bench\nbackend: twin\ntwin: {preset: nope}\narrays:\n  - {name: A, rows: 3, cols: 4, diameter_m: 1.0e-7}\n"
    )
    res = cli("check-station", "st3.yaml")
    assert res.exit_code == 2 and "'nope' is not a shipped preset" in " ".join(res.output.split())


def test_check_builtin_station_file() -> None:
    res = cli("check-station", str(Path(__file__).parents[3] / "hil" / "stations" / "twin.yaml"))
    assert res.exit_code == 0 and "station 'twin' is valid" in res.output and "A_k10" in res.output


def test_protocols_lists_units_defaults_limits(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    res = cli("protocols")
    assert res.exit_code == 0
    for text in (
        "potentiation-cycling",
        "iv-sweep",
        "conductance-map",
        "amplitude_V",
        "0 < amplitude_V <= 20 V",
    ):
        assert text in res.output


def test_runs_show_export_plot(workdir: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")
    assert cli("run", "conductance-map", "--no-plot").exit_code == 0
    assert cli("run", "iv-sweep", "--set", "arrays=A,N30", "--no-plot").exit_code == 0
    res = cli("runs")
    assert res.exit_code == 0 and "conductance-map" in res.output and "iv-sweep" in res.output
    res = cli("show", "2")
    assert res.exit_code == 0 and "iv-sweep" in res.output and "completed" in res.output
    res = cli("export", "1", "--format", "csv", "-o", "map.csv")
    assert res.exit_code == 0
    df = pd.read_csv(workdir / "map.csv")
    assert len(df) == 32 * 32 and {"run_id", "seq", "array", "row", "col", "voltage_V", "current_A",
                                   "conductance_S", "t_s"} <= set(df.columns)  # fmt: skip
    res = cli("export", "2", "--format", "csv")
    assert res.exit_code == 0 and res.output.splitlines()[0].startswith("run_id,seq,kind,array,row,col")
    res = cli("plot", "2", "-o", "iv.png")
    assert res.exit_code == 0 and (workdir / "iv.png").exists()
    assert cli("show", "9").exit_code == 2
    assert cli("export", "1", "--format", "xlsx").exit_code == 2


def test_resume_command(workdir: Path) -> None:
    assert (
        cli("run", "potentiation-cycling", "--set", "cycles=3", "--set", "pulses=5", "--no-plot").exit_code
        == 0
    )
    store = Store(workdir / "rram-hil.sqlite")
    store.finish_run(1, "interrupted")
    store.save_checkpoint(1, {"next_cycle": 2})
    res = cli("resume", "1")
    assert res.exit_code == 0, res.output
    assert store.run(1).status == "completed" and store.run(1).resumes == 1


def test_sigterm_mid_run_marks_interrupted_and_keeps_readings(tmp_path: Path) -> None:
    db = tmp_path / "term.sqlite"
    exe = Path(sys.executable).with_name("rram-hil")
    proc = subprocess.Popen(
        [str(exe), "run", "potentiation-cycling", "--db", str(db), "--set", "cycles=1000000", "--no-plot"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    try:
        seen = wait_for_readings(db, 500, proc)
        assert seen >= 500
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    store = Store(db)
    info = store.run(1)
    assert info.status == "interrupted" and "SIGTERM" in (info.error or "")
    assert len(store.readings_df(1)) >= seen
    assert list(store.events_df(1)["kind"])[-1] == "safe-state"


def test_instrument_failing_at_open_is_one_line_and_records_nothing(workdir: Path) -> None:
    import yaml

    from hil.backends import build_backend
    from sim_backend.emulators.scpi_server import Fault
    from tests.helpers import emulated, station_dict

    faults = {"matrix": [Fault("stuck_relay", channel="1A01")]}
    with emulated(station_dict(), seed=1, faults=faults) as bench:
        first = build_backend(bench.station)
        first.read("A", [(0, 0)], 0.5)  # closes 1A01, which then sticks
        first.close()
        station_file = workdir / "stuck.yaml"
        station_file.write_text(yaml.safe_dump(bench.station.snapshot()))
        res = cli("run", "conductance-map", "--station", str(station_file))
    assert res.exit_code == 1
    message = " ".join(res.output.split())
    assert (
        "error: instrument: safe state not confirmed: matrix (keithley707b): crosspoints still closed "
        "after opening all: [('A', 1)]" in message
    )
    assert "Traceback" not in res.output
    assert Store(workdir / "rram-hil.sqlite").runs_df().empty
