"""The same hybrid-training protocol through the hardware backends: the FPGA board (driver +
emulator) and SMUs behind a switch matrix (driver + instrument emulators)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil.engine import RunEngine
from hil.station import parse_station
from hil.store import Store
from hil.store.training import epoch_arrays_df, epochs_df, snapshot_index
from hil.types import ArraySpec
from sim_backend.emulators.board import BoardEmulator, twin_for_station
from tests.helpers import emulated, write_tiny_mnist

BIG_AREA = ArraySpec.area_from_diameter(1e-6)
KINDS = ("Gp", "Gm", "gp", "gm")


def training_arrays(inputs: int, hidden: int, k: float = 10.0) -> list[dict[str, Any]]:
    """The arrays of a hybrid ``inputs - hidden - 10`` network: g arrays k times smaller."""
    arrays = []
    for layer, (rows, cols) in enumerate(((inputs + 1, hidden), (hidden + 1, 10)), start=1):
        for kind in KINDS:
            area = BIG_AREA if kind.startswith("G") else BIG_AREA / k
            arrays.append({"name": f"L{layer}_{kind}", "rows": rows, "cols": cols, "area_m2": area})
    return arrays


@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(write_tiny_mnist(tmp_path / "mnist", 60, 20))


def test_hybrid_training_end_to_end_through_the_board(tmp_path: Path, data_dir: str) -> None:
    station_data: dict[str, Any] = {
        "name": "board-training",
        "backend": "board",
        "twin": {"preset": "mo_tiox_choi2021", "seed": 3},
        "instruments": {
            "board": {"model": "board", "resource": "/tmp/unused", "options": {"timeout_s": 2.0}}
        },
        "arrays": training_arrays(16, 4),
    }
    template = parse_station(station_data)
    emulator = BoardEmulator(twin_for_station(template), latency=0)
    resource = emulator.start()
    try:
        station_data["instruments"]["board"]["resource"] = resource
        station = parse_station(station_data)
        params = {"input_pool": 7, "hidden": [4], "train_limit": 30, "test_limit": 20, "epochs": 2,
                  "max_dynamic_epochs": 1, "data_dir": data_dir, "eval_batch": 10, "track_interval": 10}  # fmt: skip
        with Store(tmp_path / "board.sqlite") as store:
            outcome = RunEngine(store).run("hybrid-training", station, params, plot=False)
            assert outcome.status == "completed", outcome.error
            assert store.run(outcome.run_id).backend == "board"
            ep = epochs_df(store, outcome.run_id)
            assert list(ep["phase"]) == ["init", "dynamic", "fine"]
            assert ep["pulses"].iloc[1:].gt(0).all()
            arr = epoch_arrays_df(store, outcome.run_id).set_index(["epoch", "array"])["pulses"]
            assert arr.loc[(1, "L2_Gp")] + arr.loc[(1, "L2_Gm")] > 0 and arr.loc[(1, "L2_gp")] == 0
            assert arr.loc[(2, "L2_gp")] + arr.loc[(2, "L2_gm")] > 0 and arr.loc[(2, "L2_Gp")] == 0
            snaps = snapshot_index(store, outcome.run_id)
            assert len(snaps[(snaps["epoch"] == 2) & (snaps["kind"] == "conductance")]) == 8
    finally:
        emulator.stop()


def smu_training_station(seed: int = 0) -> dict[str, Any]:
    """A Keithley 2600 + 707B station (six cards, 72 matrix columns) holding the eight arrays of a
    hybrid 4-1-10 network, every array line on its own matrix column."""
    arrays = training_arrays(4, 1)
    pin = 1
    for a in arrays:
        routing = {
            "matrix": "matrix",
            "row_pins": pin,
            "col_pins": pin + a["rows"],
            "drive": {"smu": "smu", "channel": "a", "matrix_row": "A"},
            "ground_row": "B",
        }
        pin += a["rows"] + a["cols"]
        a["routing"] = routing
    assert pin - 1 == 72
    return {
        "name": "smu-training",
        "backend": "smu-matrix",
        "twin": {"preset": "mo_tiox_choi2021", "seed": seed},
        "instruments": {
            "smu": {
                "model": "keithley2600",
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"timeout_s": 5.0},
            },
            "matrix": {
                "model": "keithley707b",
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"timeout_s": 5.0, "slots": 6},
            },
        },  # fmt: skip
        "arrays": arrays,
        "limits": {"min_pulse_width_s": 1e-5},
    }


def test_a_few_updates_of_a_tiny_network_through_smus_and_a_switch_matrix(
    tmp_path: Path, data_dir: str
) -> None:
    with emulated(smu_training_station()) as bench:
        params = {"input_pool": 14, "hidden": [1], "train_limit": 3, "test_limit": 3, "epochs": 1,
                  "data_dir": data_dir, "track": 1, "reset_interval": 1}  # fmt: skip
        with Store(tmp_path / "smu.sqlite") as store:
            outcome = RunEngine(store).run("hybrid-training", bench.station, params, plot=False)
            assert outcome.status == "completed", outcome.error
            ep = epochs_df(store, outcome.run_id)
            assert list(ep["epoch"]) == [0, 1] and int(ep["samples"].iloc[1]) == 3
            assert int(ep["pulses"].iloc[1]) > 0  # the updates reached the devices
            events = store.events_df(outcome.run_id)
            assert "calibrated" in set(events["kind"]) and "safe-state" in set(events["kind"])
