"""``rram-hil emulate``: the shipped example station end to end, one instrument alone, bad input."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.keithley2600 import Keithley2600
from hil.cli import app
from hil.store import Store
from tests.helpers import EXAMPLE

RRAM_HIL = [sys.executable, "-m", "hil.cli"]


def _start(args: list[str]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    return subprocess.Popen(
        [*RRAM_HIL, "emulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )


def _lines_until_ready(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> list[str]:
    """Lines printed by the emulator process up to and including ``ready``."""
    assert proc.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    stdout = proc.stdout

    def pump() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line.rstrip("\n"))
            if line.strip() == "ready":
                return
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(deadline - time.monotonic(), 0.01))
        except queue.Empty:
            break
        if line is None:
            break
        seen.append(line)
        if line == "ready":
            return seen
    proc.kill()
    raise AssertionError(f"emulator did not get ready: {seen}")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=30)
    return rest


def test_emulate_example_station_then_run_potentiation_cycling_against_it(tmp_path):
    proc = _start([str(EXAMPLE), "--seed", "4"])
    try:
        lines = _lines_until_ready(proc)
        assert lines == [
            "smu: keithley2600 TCPIP0::127.0.0.1::52600::SOCKET",
            "matrix: keithley707b TCPIP0::127.0.0.1::50707::SOCKET",
            "ready",
        ]
        db = tmp_path / "runs.sqlite"
        result = CliRunner().invoke(
            app,
            [
                "run",
                "potentiation-cycling",
                "--station",
                str(EXAMPLE),
                "--db",
                str(db),
                "--set",
                "cycles=2",
                "--no-plot",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "run 1: completed" in result.output
    finally:
        rest = _stop(proc)
    assert proc.returncode == 0
    assert rest.strip().endswith("stopped")
    with Store(db) as store:
        df = store.readings_df(1)
        assert len(df) == 2 * 50
        assert store.run(1).backend == "smu-matrix"


def test_emulate_one_instrument_alone():
    proc = _start(["--instrument", "keithley2600", "--port", "0", "--latency", "0"])
    try:
        lines = _lines_until_ready(proc)
        assert len(lines) == 2 and lines[0].startswith("keithley2600: keithley2600 TCPIP0::127.0.0.1::")
        resource = lines[0].split()[-1]
        smu = Keithley2600(resource, timeout=5000, visa_library="@py")
        smu.arm("a", 1e-3)
        assert smu.read_current("a", 0.5) > 1e-7  # cabled straight to cell (0, 0) of array A
        assert smu.outputs_off(["a"]) == [False]
        smu.adapter.close()
    finally:
        _stop(proc)
    assert proc.returncode == 0


@pytest.mark.parametrize(
    "args,message",
    [
        ([], "give a STATION file or --instrument MODEL"),
        ([str(EXAMPLE), "--instrument", "b2900"], "give a STATION file or --instrument MODEL"),
        (["--instrument", "keithley9999"], "model: 'keithley9999' has no emulator"),
        ([str(EXAMPLE), "--fault", "smu"], "--fault: 'smu' is not NAME:KIND"),
        ([str(EXAMPLE), "--fault", "smu:explode"], "--fault: fault: kind 'explode' is not one of"),
        ([str(EXAMPLE), "--fault", "nobody:timeout"], "fault: 'nobody' is not an instrument"),
        ([str(EXAMPLE), "--port", "5000"], "--port: only with --instrument"),
        (["twin"], "backend 'twin' has no instruments to emulate"),
    ],
)
def test_emulate_bad_input_is_one_line_and_exit_2(args, message):
    result = CliRunner().invoke(app, ["emulate", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_check_station_validates_smu_matrix_routing_without_connecting(tmp_path):
    text = EXAMPLE.read_text().replace("ground_row: B", "ground_row: Q")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = CliRunner().invoke(app, ["check-station", str(bad)])
    assert result.exit_code == 2
    assert "arrays.A.routing.ground_row: 'Q' is not a row of a keithley707b" in result.output
    good = CliRunner().invoke(app, ["check-station", str(EXAMPLE)])
    assert good.exit_code == 0 and "backend smu-matrix" in good.output


def test_emulate_starts_the_board_emulator_of_a_board_station(tmp_path):
    """The launcher starts the FPGA board's emulator too (on a pty linked at the resource)."""
    board_example = EXAMPLE.parent / "station-board-emulated.yaml"
    link = tmp_path / "board-link"
    station = tmp_path / "board.yaml"
    station.write_text(board_example.read_text().replace("/tmp/rram-hil-board", str(link)))
    proc = _start([str(station), "--seed", "1"])
    try:
        lines = _lines_until_ready(proc)
        assert lines == [f"board: board {link}", "ready"]
        db = tmp_path / "runs.sqlite"
        result = CliRunner().invoke(
            app,
            [
                "run",
                "potentiation-cycling",
                "--station",
                str(station),
                "--db",
                str(db),
                "--set",
                "cycles=1",
                "--no-plot",
            ],
        )
        assert result.exit_code == 0, result.output
    finally:
        rest = _stop(proc)
    assert proc.returncode == 0 and rest.strip().endswith("stopped")


def test_emulate_help_lists_every_model_it_can_run() -> None:
    from sim_backend.emulators.models import EMULATORS

    result = CliRunner().invoke(app, ["emulate", "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert {"board", "keithley2450", "keithley2600", "b2900", "keithley707b", "keithley708b", "e5250a"} <= set(
        EMULATORS
    )
    for model in EMULATORS:
        assert model in text, model
