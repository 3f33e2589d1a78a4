"""CLI output that survives 80 columns and pipes: tables, machine-readable output, progress, help,
plot names, write errors, and the one-line bad-input messages of the command line."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from hil.cli import app
from hil.cli.common import RichProgress
from hil.store import Store
from tests.helpers import wait_for_readings

runner = CliRunner()
NARROW = {"COLUMNS": "80"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    return tmp_path


def cli(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, list(args), env={**NARROW, **(env or {})}, catch_exceptions=False)


def one_line_error(res, message: str, code: int = 2) -> None:
    assert res.exit_code == code, res.output
    text = " ".join(res.output.split())
    assert message in text, text
    assert "Traceback" not in res.output
    assert res.output.strip().startswith("error:") and len(res.output.strip().splitlines()) <= 3


@pytest.fixture
def two_runs(workdir: Path) -> Path:
    """Run 1 potentiation-cycling (then marked interrupted), run 2 conductance-map."""
    assert (
        cli("run", "potentiation-cycling", "--set", "cycles=2", "--set", "pulses=5", "--no-plot").exit_code
        == 0
    )
    assert cli("run", "conductance-map", "--no-plot").exit_code == 0
    Store(workdir / "rram-hil.sqlite").finish_run(1, "interrupted")
    return workdir / "rram-hil.sqlite"


# ---------------------------------------------------------------------- runs, show
def test_runs_at_80_columns_keeps_id_protocol_status_readings_whole(two_runs: Path) -> None:
    res = cli("runs")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert all(len(line) <= 80 for line in lines)
    (row,) = [line for line in lines if "interrupted" in line]  # `rram-hil runs | grep interrupted`
    assert re.search(r"\b1\b.*potentiation-cycling.*interrupted.*\b10\b", row)
    (row,) = [line for line in lines if "completed" in line]
    assert re.search(r"\b2\b.*conductance-map.*completed.*\b1024\b", row)


def test_runs_piped_to_grep_finds_the_interrupted_row(two_runs: Path) -> None:
    exe = Path(sys.executable).with_name("rram-hil")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # a pipe: rich's default 80
    shown = subprocess.run([str(exe), "runs", "--db", str(two_runs)], capture_output=True, text=True, env=env)
    rows = [line for line in shown.stdout.splitlines() if "interrupted" in line]
    assert len(rows) == 1 and "potentiation-cycling" in rows[0]


def test_runs_json_and_csv_keep_the_store_column_names(two_runs: Path) -> None:
    keys = [
        "id",
        "protocol",
        "status",
        "backend",
        "station_name",
        "seed",
        "started_at",
        "ended_at",
        "readings",
    ]
    res = cli("runs", "--json")
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert [list(d) for d in data] == [keys, keys]
    assert [(d["id"], d["status"], d["readings"]) for d in data] == [
        (1, "interrupted", 10),
        (2, "completed", 1024),
    ]
    res = cli("runs", "--csv")
    df = pd.read_csv(io.StringIO(res.output))
    assert list(df.columns) == keys and list(df.status) == ["interrupted", "completed"]
    assert cli("runs", "--json", "--csv").exit_code == 2


def test_show_json(two_runs: Path) -> None:
    res = cli("show", "2", "--json")
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["id"] == 2 and data["protocol"] == "conductance-map" and data["status"] == "completed"
    assert data["readings"] == 1024 and data["parameters"]["array"] == "A" and data["plots"] == []
    assert {"station", "backend_info", "seed", "started_at", "ended_at", "resumes", "pulse_records"} <= set(
        data
    )
    res = cli("show", "2")
    assert res.exit_code == 0 and all(len(line) <= 80 for line in res.output.splitlines())


# ---------------------------------------------------------------------- protocols
def test_protocols_at_80_columns_keeps_names_defaults_units_and_readable_types() -> None:
    res = cli("protocols")
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    one = cli("protocols", "pulse-response").output.splitlines()
    (line,) = [ln for ln in one if ln.split()[:1] == ["depression_amplitude_V"]]
    assert line.split()[:3] == ["depression_amplitude_V", "-2", "V"], line
    (pool,) = [ln for ln in lines if ln.split()[:1] == ["input_pool"]]
    assert "1, 2, 4, 7, 14 or 28" in pool and "Literal" not in res.output
    from hil.protocol import available_protocols

    names = {ln.split()[0] for ln in lines if ln.startswith("  ") and ln.split()}
    for cls in available_protocols().values():
        assert set(cls.Params.model_fields) <= names  # every parameter name printed whole


def test_protocols_json_and_csv() -> None:
    res = cli("protocols", "hybrid-training", "--json")
    assert res.exit_code == 0
    (proto,) = json.loads(res.output)
    assert proto["name"] == "hybrid-training" and proto["resumable"] in (True, False)
    pool = {p["name"]: p for p in proto["parameters"]}["input_pool"]
    assert pool["type"] == "1, 2, 4, 7, 14 or 28" and pool["allowed"] == "input_pool: 1, 2, 4, 7, 14 or 28"
    res = cli("protocols", "--json")
    amp = {
        p["name"]: p for p in {d["name"]: d for d in json.loads(res.output)}["pulse-response"]["parameters"]
    }
    assert amp["amplitude_V"] == {
        "name": "amplitude_V",
        "default": 2.0,
        "unit": "V",
        "type": "a number",
        "allowed": "0 < amplitude_V <= 20 V",
        "min": 0.0,
        "min_inclusive": False,
        "max": 20.0,
        "max_inclusive": True,
        "description": "potentiation pulse amplitude",
    }
    df = pd.read_csv(io.StringIO(cli("protocols", "--csv").output))
    assert {"protocol", "name", "default", "unit", "allowed"} <= set(df.columns)
    assert ((df.protocol == "write-verify") & (df.name == "depression_amplitude_V")).sum() == 1
    assert cli("protocols", "nosuch").exit_code == 2


def test_protocols_station_shows_effective_limits(workdir: Path) -> None:
    (workdir / "tight.yaml").write_text(
        "name: tight\nbackend: twin\narrays:\n  - {name: A, rows: 4, cols: 4, diameter_m: 1.0e-6}\n"
        "limits: {max_abs_voltage_V: 3.0, max_read_voltage_V: 0.4, max_pulse_width_s: 1.0e-3}\n"
    )
    res = cli("protocols", "write-verify", "--station", "tight.yaml", "--json")
    params = {p["name"]: p for p in json.loads(res.output)[0]["parameters"]}
    assert params["amplitude_V"]["station_limit"] == "max_abs_voltage_V"
    assert params["amplitude_V"]["effective"] == "0 < amplitude_V <= 3 V"
    assert params["depression_amplitude_V"]["effective_min"] == -3.0
    assert params["read_voltage_V"]["station_limit"] == "max_read_voltage_V"
    assert params["read_voltage_V"]["effective_max"] == 0.4
    assert params["width_s"]["effective"] == "1e-09 <= width_s <= 0.001 s"
    assert params["tolerance_rel"]["station_limit"] is None
    res = cli("protocols", "write-verify", "--station", "tight.yaml")
    assert res.exit_code == 0 and "station (effective)" in res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.split()[:1] == ["amplitude_V"]]
    assert line.split()[-3:] == ["0,", "<=", "3"] and "<= 20" in line  # protocol bound, then the station's
    wide = cli("protocols", "write-verify", "--station", "tight.yaml", env={"COLUMNS": "250"})
    assert "0 < read_voltage_V <= 0.4 V (max_read_voltage_V)" in wide.output
    one_line_error(
        cli("protocols", "--station", "missing.yaml"), "station: file 'missing.yaml' does not exist"
    )


# ---------------------------------------------------------------------- progress
class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _lines(text: str) -> list[str]:
    return [ln for ln in re.split(r"[\r\n]", ANSI.sub("", text)) if ln.strip()]


def test_progress_off_a_terminal_is_periodic_log_lines_with_count_rate_eta() -> None:
    buf, clock = io.StringIO(), Clock()
    p = RichProgress(Console(file=buf, width=80), every_s=10, clock=clock)
    p.start(1500, "potentiation-cycling on A, 1 cell(s)")
    for _ in range(300):
        clock.t += 0.125
        p.advance(1, status="G 48.75 uS after 50 pulses")
    p.stop("interrupted")
    p.stop("interrupted")  # the engine's end and Ctrl-C: one last line, not two
    lines = buf.getvalue().splitlines()
    assert "━" not in buf.getvalue() and "\x1b" not in buf.getvalue()  # no bar, no cursor control
    assert len(lines) == 1 + 3 + 1, lines  # the start, one every 10 s of 37.5 s, the end
    assert re.search(r" 80/1500 5% 0:00:10 ETA 0:02:5\d \(8\.0/s\)", lines[1]), lines[1]
    assert sum("interrupted" in ln for ln in lines) == 1 and "300/1500" in lines[-1]
    assert all(len(ln) <= 77 for ln in lines)


def test_progress_that_ends_early_ends_at_its_real_total() -> None:
    buf, clock = io.StringIO(), Clock()
    p = RichProgress(Console(file=buf, width=80), every_s=1e9, clock=clock)
    p.start(57, "threshold-search (set)")
    for _ in range(18):
        clock.t += 0.5
        p.advance(1, status="+1.05 V: 16/16 switched")
    p.stop("completed")
    assert "18/18 100% completed in 0:00:09" in buf.getvalue().splitlines()[-1]


def test_progress_bar_on_an_80_column_terminal_keeps_count_and_times_whole() -> None:
    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, force_terminal=True, width=80, color_system=None)
    p = RichProgress(console, clock=clock)
    p.start(1500, "potentiation-cycling on A, 1 cell(s)")
    for _ in range(300):
        clock.t += 0.05
        p.advance(1, status="G 48.75 uS after 50 pulses")
    assert p._live is not None
    p._live.refresh()
    p.stop("interrupted")
    p.stop("interrupted")
    text = buf.getvalue()
    lines = _lines(text)
    assert all(len(ln) <= 77 for ln in lines)  # room for an echoed ^C: the line cannot wrap into a copy
    assert any("300/1500 20% 0:00:15 ETA 0:01:00" in ln for ln in lines), lines
    assert "━" in text and text.count("\n") == 1  # redrawn in place, left once


def test_run_piped_logs_progress_lines_and_threshold_search_ends_at_its_total(workdir: Path) -> None:
    res = runner.invoke(
        app, ["run", "threshold-search", "--no-plot"], env={**NARROW, "RRAM_HIL_PROGRESS_EVERY": "0"}
    )
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("threshold-search")]
    assert len(lines) > 2 and all(re.search(r"\d+/57 \d+% \d:\d\d:\d\d ETA", ln) for ln in lines[:-1])
    done, total = re.search(r"(\d+)/(\d+) 100% completed in", lines[-1]).groups()  # type: ignore[union-attr]
    assert done == total and int(total) < 57


def test_ctrl_c_mid_run_prints_the_last_progress_line_once(tmp_path: Path) -> None:
    db = tmp_path / "int.sqlite"
    exe = Path(sys.executable).with_name("rram-hil")
    proc = subprocess.Popen(
        [str(exe), "run", "potentiation-cycling", "--db", str(db), "--set", "cycles=1000000", "--no-plot"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "80", "RRAM_HIL_PROGRESS_EVERY": "3600"},
    )
    try:
        seen = wait_for_readings(db, 200, proc)
        assert seen >= 200
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    progress = [ln for ln in stderr.splitlines() if ln.startswith("potentiation-cycl")]
    assert len(progress) == 2 and "/1000000" in progress[0], stderr  # the start, then the end once
    assert "interrupted in" in progress[1] and len(progress[1]) <= 77


# ---------------------------------------------------------------------- help, plot options
@pytest.mark.parametrize("command", ["run", "resume", "analyze", "runs", "protocols", "emulate"])
def test_flags_are_shown_as_flags(command: str) -> None:
    res = cli(command, "--help")
    assert res.exit_code == 0 and "<bool>" not in res.output and "--help" in res.output


def test_run_and_resume_both_take_plot_and_no_plot(workdir: Path) -> None:
    for command in ("run", "resume"):
        text = cli(command, "--help").output
        assert "--plot" in text and "FILE" in text and "--no-plot" in text
    assert (
        cli("run", "potentiation-cycling", "--set", "cycles=3", "--set", "pulses=5", "--no-plot").exit_code
        == 0
    )
    store = Store(workdir / "rram-hil.sqlite")
    store.finish_run(1, "interrupted")
    store.save_checkpoint(1, {"next_cycle": 2})
    res = cli("resume", "1", "--no-plot")
    assert res.exit_code == 0, res.output
    assert store.run(1).status == "completed" and not (workdir / "rram-hil-plots").exists()
    store.finish_run(1, "interrupted")
    res = cli("resume", "1", "--plot", "again.svg")
    assert res.exit_code == 0 and (workdir / "again.svg").exists() and "plot: again.svg" in res.output
    one_line_error(cli("run", "conductance-map", "--plot", "x.png", "--no-plot"), "--plot and --no-plot")


def test_plots_of_two_databases_never_overwrite_each_other(workdir: Path) -> None:
    for db in ("a.sqlite", "b.sqlite", "one/lab.sqlite", "two/lab.sqlite"):
        (workdir / db).parent.mkdir(exist_ok=True)
        assert cli("run", "conductance-map", "--db", db).exit_code == 0
    plots = sorted(p.name for p in (workdir / "rram-hil-plots").iterdir())
    assert (
        len(plots) == 4
        and "a-run-0001-conductance-map.png" in plots
        and "b-run-0001-conductance-map.png" in plots
    )
    assert "lab-run-0001-conductance-map.png" in plots  # the second lab.sqlite got a tagged name
    assert cli("plot", "1", "--db", "a.sqlite").exit_code == 0  # redrawn in place: still four
    assert len(list((workdir / "rram-hil-plots").iterdir())) == 4
    assert Store(workdir / "a.sqlite").artifacts(1, "plot")[-1].endswith("a-run-0001-conductance-map.png")


# ---------------------------------------------------------------------- files written
def test_file_writing_commands_fail_with_one_line(workdir: Path) -> None:
    assert cli("run", "conductance-map", "--no-plot").exit_code == 0
    (workdir / "afile").write_text("")
    one_line_error(cli("plot", "1", "-o", "p.txt"), "plot: 'p.txt' must end in an image format")
    one_line_error(cli("plot", "1", "-o", "afile/p.png"), "plot: cannot write 'afile/p.png'")
    one_line_error(
        cli("export", "1", "-o", "missing/dir/x.csv"),
        "output: cannot write 'missing/dir/x.csv' (No such file",
    )
    one_line_error(cli("export", "1", "-o", "afile/x.csv"), "output: cannot write 'afile/x.csv'")
    assert sorted(p.name for p in workdir.iterdir() if not p.name.startswith("rram-hil.sqlite")) == ["afile"]
    before = len(Store(workdir / "rram-hil.sqlite").runs_df())
    one_line_error(
        cli("run", "conductance-map", "--plot", "p.txt"), "plot: 'p.txt' must end in an image format"
    )
    one_line_error(cli("run", "conductance-map", "--plot", "afile/p.png"), "plot: cannot write 'afile/p.png'")
    assert len(Store(workdir / "rram-hil.sqlite").runs_df()) == before  # refused before the run


def test_export_events_writes_json_columns_as_json(workdir: Path) -> None:
    assert cli("run", "threshold-search", "--no-plot").exit_code == 0
    res = cli("export", "1", "--table", "events", "-o", "events.csv")
    assert res.exit_code == 0
    df = pd.read_csv(workdir / "events.csv")
    details = [json.loads(d) for d in df.detail]
    assert {"thresholds", "safe-state"} <= set(df.kind)
    safe = details[list(df.kind).index("safe-state")]
    assert safe["confirmed"] is True and "True" not in df.detail.iloc[-1]


# ---------------------------------------------------------------------- bad --set values
def test_set_given_twice_is_an_error_naming_it(workdir: Path) -> None:
    res = cli("run", "potentiation-cycling", "--set", "cycles=2", "--set", "cycles=3")
    one_line_error(res, "--set: 'cycles' is given twice (cycles=2 and cycles=3)")
    assert not (workdir / "rram-hil.sqlite").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_values_are_not_a_finite_number(workdir: Path, value: str) -> None:
    res = cli("run", "potentiation-cycling", "--set", f"amplitude_V={value}")
    one_line_error(res, f"amplitude_V: not a finite number (got '{value}'; allowed: 0 < amplitude_V <= 20 V)")
    assert "less than" not in res.output and "greater than" not in res.output
    assert not (workdir / "rram-hil.sqlite").exists()


@pytest.mark.parametrize(
    ("protocol", "setting", "message"),
    [
        ("forming", "v_stop_V=-50", "v_stop_V = -50 is outside the allowed range [-5, 5] V"),
        ("forming", "v_start_V=-7", "v_start_V = -7 is outside the allowed range [-5, 5] V"),
        ("iv-sweep", "v_stop_V=-6", "v_stop_V = -6 is outside the allowed range [-5, 5] V"),
        ("forming", "v_stop_V=7", "v_stop_V = 7 is outside the allowed range [-5, 5] V"),
    ],
)
def test_a_negative_value_keeps_its_sign(workdir: Path, protocol: str, setting: str, message: str) -> None:
    one_line_error(cli("run", protocol, "--set", setting), message)
    assert not (workdir / "rram-hil.sqlite").exists()


@pytest.mark.parametrize(
    "description",
    ["potentiation-cycling on A, 1 cell(s)", "threshold-search (set)", "write-verify: 16 cell(s)"],
)
def test_a_progress_line_at_80_columns_keeps_the_protocol_name_and_count_whole(description: str) -> None:
    from hil.cli.common import _State, progress_line

    clock = iter(float(t) for t in range(100))
    state = _State(lambda: next(clock))
    state.description, state.total = description, 30
    for _ in range(30):
        state.advance(1, "G 49.77 uS after 50 pulses, a long status")
    for bar, final in ((False, "completed"), (True, None), (False, None)):
        line = progress_line(state, 77, bar=bar, final=final)
        assert len(line) <= 77, line
        assert line.startswith(description.split(" ")[0]), line
        assert "30/30" in line, line
