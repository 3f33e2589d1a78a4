"""Whole runs on the emulated board: the seam to the direct twin, faults ending safely with every
reading committed, the command line, and the stand-alone emulator with the example station."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from hil.cli import app
from hil.engine import RunEngine, RunOutcome
from hil.protocol import RunContext
from hil.station import Station, load_station
from hil.store import Store
from protocols.potentiation import PotentiationCycling, PotentiationCyclingParams
from sim_backend.emulators.board import BoardEmulator, BoardFault
from tests.helpers import BOARD_ARRAYS, emulated_board, twin_station
from tests.helpers import run as run_protocol

RESOLUTION = 2**-23
ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "station-board-emulated.yaml"


def run(
    station: Station, tmp_path: Path, protocol: Any = "potentiation-cycling", **params: Any
) -> tuple[RunOutcome, pd.DataFrame]:
    with Store(tmp_path / f"{station.name}-{id(protocol)}.sqlite") as store:
        outcome = run_protocol(store, protocol, station, expect=None, **params)
        return outcome, store.readings_df(outcome.run_id)


@pytest.fixture(scope="module")
def direct_readings(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    outcome, readings = run(twin_station(arrays=BOARD_ARRAYS, seed=7), tmp_path_factory.mktemp("direct"), cells="0:2,0:2")
    assert outcome.status == "completed"
    return readings


def assert_same_trajectory(board: pd.DataFrame, direct: pd.DataFrame) -> None:
    keys = ["kind", "array", "row", "col", "cycle", "pulse"]
    assert len(board) > 0
    np.testing.assert_array_equal(board[keys].to_numpy(), direct[keys].iloc[: len(board)].to_numpy())
    np.testing.assert_allclose(
        board["conductance_S"].to_numpy(),
        direct["conductance_S"].iloc[: len(board)].to_numpy(),
        rtol=RESOLUTION,
    )


def test_potentiation_cycling_through_the_board_matches_the_direct_twin(
    tmp_path: Path, direct_readings: pd.DataFrame
) -> None:
    with emulated_board(seed=7) as (station, emu):
        outcome, readings = run(station, tmp_path, cells="0:2,0:2")
        assert outcome.status == "completed", outcome.error
        assert len(readings) == len(direct_readings) == 4 * 30 * 50
        assert_same_trajectory(readings, direct_readings)
        # 1 initial reset + 30 x (train with reads + reset), each one PULSE command
        assert emu.applied_by_command["PULSE"] == 61
        assert not emu.outputs_on


def test_recovered_faults_leave_the_trajectory_unchanged(
    tmp_path: Path, direct_readings: pd.DataFrame
) -> None:
    faults = [
        BoardFault("timeout", "PULSE", after=3),
        BoardFault("garbled", "PULSE", after=10),
        BoardFault("timeout", "PULSE", after=20, applied=False),
        BoardFault("garbled", "PULSE", after=30, times=2),
    ]
    with emulated_board(seed=7, faults=faults, timeout_s=0.1, retries=2) as (station, emu):
        outcome, readings = run(station, tmp_path, cells="0:2,0:2")
        assert outcome.status == "completed", outcome.error
        assert_same_trajectory(readings, direct_readings)
        assert len(readings) == len(direct_readings)
        assert emu.replayed == 4  # every lost or garbled reply was re-sent, never re-applied
        assert emu.applied_by_command["PULSE"] == 61


class _Tripwire:
    """A backend proxy that raises on its n-th pulse call (an error inside the protocol)."""

    def __init__(self, inner: Any, at_call: int, error: BaseException) -> None:
        self.inner, self.at_call, self.error, self.calls = inner, at_call, error, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pulse(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == self.at_call:
            raise self.error
        return self.inner.pulse(*args, **kwargs)


class TrippingCycling(PotentiationCycling):
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def execute(self, ctx: RunContext, params: PotentiationCyclingParams) -> None:
        ctx.backend = _Tripwire(ctx.backend, 6, self.error)  # type: ignore[assignment]
        super().execute(ctx, params)


# the 6th PULSE is cycle 2's potentiation train: cycles 0 and 1 (2 x 50 readings per cell) are done
FAULT_CASES = {
    "timeout": ([BoardFault("timeout", "PULSE", after=5, times=99)], None, "failed", "command"),
    "garbled": ([BoardFault("garbled", "PULSE", after=5, times=99)], None, "failed", "command"),
    "disconnect": ([BoardFault("disconnect", "PULSE", after=5)], None, "failed", "link lost"),
    "exception": ([], RuntimeError("boom inside the protocol"), "failed", "command"),
    "ctrl-c": ([], KeyboardInterrupt("Ctrl-C"), "interrupted", "command"),
}


@pytest.mark.parametrize("case", list(FAULT_CASES))
def test_faults_end_with_outputs_off_and_readings_committed(
    case: str, tmp_path: Path, direct_readings: pd.DataFrame
) -> None:
    faults, error, status, how_safe = FAULT_CASES[case]
    with emulated_board(seed=7, faults=faults, timeout_s=0.05, retries=1) as (station, emu):
        protocol = "potentiation-cycling" if error is None else TrippingCycling(error)
        outcome, readings = run(station, tmp_path, protocol, cells="0:2,0:2")
        assert outcome.status == status
        assert emu.wait_until(lambda e: not e.outputs_on, timeout_s=5.0)
        assert emu.firmware.safe_states[how_safe] >= 1
        assert emu.firmware.safe_states["watchdog"] == 0
        assert len(readings) == 4 * 2 * 50
        assert_same_trajectory(readings, direct_readings)


def _station_file(tmp_path: Path, resource: str, **top: Any) -> Path:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["instruments"]["board"]["resource"] = resource
    data.update(top)
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_example_station_is_a_valid_board_station() -> None:
    station = load_station(EXAMPLE)
    assert station.backend == "board"
    assert station.instruments["board"].model == "board"
    assert station.instruments["board"].resource == "/tmp/rram-hil-board"
    assert station.twin is not None


def test_cli_run_on_the_emulated_board(tmp_path: Path) -> None:
    from sim_backend.emulators.board import twin_for_station

    with BoardEmulator(twin_for_station(load_station(EXAMPLE)), latency=0) as emu:
        assert emu.resource is not None
        station = _station_file(tmp_path, emu.resource)
        db = tmp_path / "cli.sqlite"
        result = CliRunner().invoke(
            app,
            [
                "run",
                "potentiation-cycling",
                "--station",
                str(station),
                "--db",
                str(db),
                "--no-plot",
                "--set",
                "cycles=3",
            ],
        )
        assert result.exit_code == 0, result.output
        assert "completed" in result.output
        assert not emu.outputs_on
    with Store(db) as store:
        assert len(store.readings_df(1)) == 3 * 50


def test_cli_without_a_running_board_is_a_one_line_error(tmp_path: Path) -> None:
    station = _station_file(tmp_path, str(tmp_path / "no-board-here"))
    result = CliRunner().invoke(
        app, ["run", "potentiation-cycling", "--station", str(station), "--db", str(tmp_path / "x.sqlite")]
    )
    assert result.exit_code == 2
    assert "instruments.board.resource: cannot open serial port" in result.output


def test_stand_alone_emulator_serves_the_example_station(tmp_path: Path) -> None:
    link = tmp_path / "rram-hil-board"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sim_backend.emulators.board",
            str(EXAMPLE),
            "--link",
            str(link),
            "--latency-ms",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == str(link)
        assert proc.stdout.readline().strip() == "ready"
        station = _station_file(tmp_path, str(link))
        result = CliRunner().invoke(
            app,
            [
                "run",
                "potentiation-cycling",
                "--station",
                str(station),
                "--db",
                str(tmp_path / "s.sqlite"),
                "--no-plot",
                "--set",
                "cycles=2",
            ],
        )
        assert result.exit_code == 0, result.output
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    assert not link.exists()


def test_interrupted_board_run_resumes_over_a_new_connection(tmp_path: Path) -> None:
    with emulated_board(seed=7) as (station, emu), Store(tmp_path / "resume.sqlite") as store:
        engine = RunEngine(store)
        first = engine.run(TrippingCycling(KeyboardInterrupt("Ctrl-C")), station, {"cycles": 4}, plot=False)
        assert first.status == "interrupted" and not emu.outputs_on
        resumed = engine.resume(first.run_id, plot=False)
        assert resumed.status == "completed", resumed.error
        readings = store.readings_df(first.run_id)
        assert (readings["kind"] == "potentiation").sum() == 4 * 50
        assert emu.applied_by_command["IDENTIFY"] == 2 and not emu.outputs_on
