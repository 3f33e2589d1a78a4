"""The Python API (:mod:`hil.api`): a station left safe on every exit, the backend's operations
behind the safety layer, runs by name, the database as DataFrames, analyze / report / calibrate,
and bad input as the command line's one-line errors with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import hil.api as rh
from hil.safety import SafeBackend
from tests.helpers import twin_station


@pytest.fixture
def dbfile(tmp_path: Path) -> Path:
    return tmp_path / "api.sqlite"


@pytest.fixture
def cycling(dbfile: Path, tmp_path: Path) -> rh.Run:
    return rh.run(
        "potentiation-cycling",
        cells="0:2,0:2",
        cycles=2,
        pulses=10,
        seed=1,
        db=dbfile,
        plot_dir=tmp_path / "plots",
    )


def test_a_station_is_left_safe_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), rh.station(seed=1) as bench:
        assert isinstance(bench.backend, SafeBackend)
        bench.pulse("A", "0,0", amplitude_V=2.0, width_s=100e-6, count=3)
        raise RuntimeError("the user's code fails")
    assert bench.safe_state_report is not None and bench.safe_state_report.confirmed
    assert bench.close() is bench.safe_state_report  # closing twice is harmless


def test_commands_outside_the_limits_raise_limit_error_and_change_nothing() -> None:
    limits = {"max_abs_voltage_V": 3.0, "max_read_voltage_V": 0.6}
    with rh.station(twin_station(limits=limits), seed=2) as bench:
        g0 = bench.read("A", "all").conductance_S
        with pytest.raises(rh.LimitError, match=r"amplitude_V = 4 is outside the allowed range \[-3, 3\] V"):
            bench.pulse("A", "0:2,0:2", amplitude_V=4.0, width_s=100e-6)
        with pytest.raises(rh.LimitError, match="voltage_V"):
            bench.read("A", voltage_V=0.9)
        with pytest.raises(rh.LimitError, match="compliance_A"):
            bench.iv_sweep("A", 0, 0, [0.0, 1.0], compliance_A=1.0)
        with pytest.raises(rh.LimitError, match="voltages_V"):
            bench.vmm("A", np.full(bench.arrays["A"].rows, 2.0))
        assert np.allclose(bench.read("A", "all").conductance_S, g0, rtol=0.02)  # read noise only


def test_operations_with_si_keywords_and_dataframes() -> None:
    with rh.station(seed=3) as bench:
        spec = bench.arrays["A"]
        read = rh.to_df(bench.read("A", [(0, 0), (1, 1)]))
        assert list(read.columns) == ["array", "row", "col", "voltage_V", "current_A", "conductance_S", "t_s"]
        assert len(read) == 2 and (read["conductance_S"] > 0).all()
        train = rh.to_df(bench.pulse("A", "0:2,0:3", amplitude_V=2.0, width_s=1e-4, count=4, read_after=True))
        assert len(train) == 6 * 4 and train["pulse"].max() == 3
        assert train.groupby(["row", "col"])["conductance_S"].is_monotonic_increasing.all()
        reset = rh.to_df(bench.pulse("A", "0:2,0:3", amplitude_V=-4.0, width_s=1e-4, count=5))
        assert list(reset["count"]) == [5] * 6
        counts = np.zeros(spec.shape, dtype=int)
        counts[0, 0] = 3
        assert bench.program("A", counts, amplitude_V=2.0, width_s=1e-4).pulses_applied == 3
        assert bench.program_cells("A", "1,1;2,2", [1, 2], amplitude_V=2.0, width_s=1e-4).pulses_applied == 3
        r, c = np.zeros(spec.rows), np.zeros(spec.cols)
        r[0], c[:2] = 1.0, 2.0
        assert bench.program_outer("A", r, c, amplitude_V=2.0, width_s=1e-4).pulses_applied == 4
        rows, cols = np.zeros((spec.rows, 5), dtype=bool), np.zeros((spec.cols, 5), dtype=bool)
        rows[1, :3], cols[0, 1:] = True, True  # cell (1, 0) coincides in slots 1 and 2
        streamed = bench.program_streams("A", rows, cols, amplitude_V=2.0, width_s=1e-4)
        assert (streamed.pulses_applied, streamed.cells_programmed) == (2, 1)
        currents = bench.vmm("A", np.full(spec.rows, 0.1))
        assert currents.shape == (spec.cols,)
        iv = rh.to_df(bench.iv_sweep("A", 3, 3, np.linspace(0, 0.8, 5), compliance_A=1e-4, dwell_s=1e-3))
        assert len(iv) == 5 and "in_compliance" in iv
        t = bench.now()
        bench.delay(10.0)
        assert bench.now() >= t + 10.0
    with pytest.raises(TypeError, match="to_df"):
        rh.to_df(object())  # type: ignore[arg-type]


def test_a_run_comes_back_with_its_tables(cycling: rh.Run, dbfile: Path) -> None:
    assert cycling.status == "completed" and cycling.error is None
    assert cycling.plot is not None and cycling.plot.is_file()
    assert cycling.parameters["cycles"] == 2
    readings = cycling.readings()
    assert len(readings) == 4 * 2 * 10 and set(readings["kind"]) == {"potentiation"}
    assert len(cycling.pulses()) > 0
    assert "safe-state" in set(cycling.events()["kind"])
    assert cycling.epochs().empty
    listed = rh.runs(dbfile)
    assert list(listed["id"]) == [cycling.id] and list(listed["status"]) == ["completed"]
    shown = rh.show(cycling.id, db=dbfile)
    assert (shown.id, shown.status, shown.plot) == (cycling.id, "completed", cycling.plot.resolve())


def test_bad_input_raises_the_cli_s_one_line_errors_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "never.sqlite"
    with pytest.raises(rh.ConfigError, match=r"^cycles: Input should be greater than or equal to 1"):
        rh.run("potentiation-cycling", cycles=0, db=db)
    with pytest.raises(rh.ConfigError, match="protocol: 'nope' is not known"):
        rh.run("nope", db=db)
    with pytest.raises(rh.ConfigError, match="unknown name"):
        rh.run("potentiation-cycling", cylces=3, db=db)
    with pytest.raises(rh.LimitError, match="amplitude_V = 9"):
        rh.run("potentiation-cycling", amplitude_V=9, db=db)
    with pytest.raises(rh.ConfigError, match="cycles: given both"):
        rh.run("potentiation-cycling", {"cycles": 2}, cycles=3, db=db)
    with pytest.raises(rh.ConfigError, match="station: file 'missing.yaml' does not exist"):
        rh.station("missing.yaml")
    with pytest.raises(rh.ConfigError, match=r"must end in \.yaml or \.yml"):
        rh.calibrate(1, tmp_path / "preset.txt", db=db)
    assert not db.exists()


def test_the_database_by_path_or_url(cycling: rh.Run, dbfile: Path, tmp_path: Path) -> None:
    with rh.db(f"sqlite:///{dbfile}") as database:
        assert database.url.endswith("api.sqlite")
        assert len(database.readings(cycling.id)) == len(cycling.readings())
        events = database.export(cycling.id, tmp_path / "events.csv", table="events")
        written = pd.read_csv(tmp_path / "events.csv")
        assert len(written) == len(events)
        assert json.loads(written["detail"].iloc[-1])["outputs"] == "off"  # JSON, not a Python repr
        with pytest.raises(rh.ConfigError, match="table: 'nope' is not one of readings, pulses, events"):
            database.export(cycling.id, table="nope")
        with pytest.raises(rh.ConfigError, match="run: no run with id 99"):
            database.readings(99)
    exported = rh.export(cycling.id, tmp_path / "r.csv", db=dbfile)
    assert len(pd.read_csv(tmp_path / "r.csv")) == len(exported)
    with pytest.raises(rh.ConfigError, match="db: directory"):
        rh.db(tmp_path / "missing" / "x.sqlite")


def test_resume_refuses_a_completed_run(cycling: rh.Run, dbfile: Path) -> None:
    with pytest.raises(rh.ConfigError, match="only interrupted or failed runs resume"):
        rh.resume(cycling.id, db=dbfile)


def test_analyze_report_and_calibrate(cycling: rh.Run, dbfile: Path, tmp_path: Path) -> None:
    analysis = rh.analyze(cycling.id, db=dbfile)
    assert analysis.summary["g_max_S"] > analysis.summary["g_min_S"] > 0
    assert cycling.analyze().summary == analysis.summary
    path = rh.report([cycling.id], tmp_path / "r.html", db=dbfile)
    assert path.read_text(encoding="utf-8").startswith("<!")
    with pytest.raises(rh.ConfigError, match=r"^output: cannot write '.*missing/r.html'"):
        rh.report(cycling.id, tmp_path / "missing" / "r.html", db=dbfile)
    calibration = rh.calibrate(cycling.id, tmp_path / "fitted.yaml", db=dbfile)
    assert calibration.preset.name == "fitted" and calibration.path.is_file()
    table = calibration.table()
    assert "g_min_S" in set(table["parameter"])
    with rh.station(twin_station(twin={"preset": str(calibration.path)}), seed=0) as bench:
        assert bench.read("A", "0,0").conductance_S[0] > 0
    with pytest.raises(rh.ConfigError, match="^base: "):
        rh.calibrate(cycling.id, tmp_path / "x.yaml", base="nope", db=dbfile)


def test_protocols_lists_every_parameter_with_its_unit() -> None:
    table = rh.protocols()
    row = table[(table["protocol"] == "potentiation-cycling") & (table["parameter"] == "amplitude_V")].iloc[0]
    assert (row["default"], row["unit"]) == (2.0, "V") and "amplitude_V" in row["allowed"]
    assert set(table["protocol"]) >= {"hybrid-training", "endurance", "sequence"}
