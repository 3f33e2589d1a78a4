"""Bad input to the protocols: one line naming the field and its allowed range, and nothing written
(no run row; no database file when none existed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil.engine import RunEngine, prepare
from hil.errors import ConfigError
from hil.safety import LimitError
from hil.store import Store
from protocols.sequence import MAX_LOOP_DEPTH, MAX_NESTING, load_program
from tests.helpers import twin_station, write_tiny_mnist


def refused(tmp_path: Path, protocol: str, params: dict[str, Any]) -> str:
    """The message a run of ``protocol`` is refused with; checks that nothing was written."""
    with pytest.raises((ConfigError, LimitError)) as info:
        prepare(protocol, twin_station(), params)  # what the CLI checks before opening the database
    db = tmp_path / "runs.sqlite"
    store = Store(db)
    with pytest.raises((ConfigError, LimitError)) as again:
        RunEngine(store).run(protocol, twin_station(), params)
    assert str(again.value) == str(info.value)
    assert store.runs_df().empty
    store.close()
    message = str(info.value)
    assert "\n" not in message
    return message


def nested_program(depth: int, form: str = "block") -> str:
    step = "{read: {}}"
    for _ in range(depth):
        step = (
            f"{{loop: {{count: 1, steps: [{step}]}}}}"
            if form == "block"
            else (f"{{type: loop, count: 1, steps: [{step}]}}")
        )
    return f"steps: [{step}]\n"


@pytest.mark.parametrize("form", ["block", "type"])
def test_sequence_nested_200_loops_deep_is_one_line(tmp_path: Path, form: str) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(nested_program(200, form))
    message = refused(tmp_path, "sequence", {"program": str(path)})
    assert message == (
        f"program: Value error, '{path}' nests loops 200 deep; allowed: at most 16 "
        f"(got '{path}'; allowed: program: text)"
    )
    assert not (tmp_path / "rram-hil-plots").exists()


def test_sequence_loops_up_to_the_limit_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text(nested_program(MAX_LOOP_DEPTH))
    assert len(load_program(path).steps) == 1
    path.write_text(nested_program(MAX_LOOP_DEPTH + 1))
    with pytest.raises(ConfigError, match=f"nests loops {MAX_LOOP_DEPTH + 1} deep; allowed: at most 16"):
        load_program(path)


def test_sequence_deep_yaml_outside_loops_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("steps: [{read: {label: %s}}]\n" % ("[" * 5000 + "]" * 5000))
    with pytest.raises(ConfigError) as info:
        load_program(path)
    assert str(info.value) == (
        f"program: '{path}' nests mappings and lists 5004 deep; allowed: at most {MAX_NESTING}"
    )


@pytest.mark.parametrize(
    ("protocol", "params", "message"),
    [
        ("forming", {"v_stop_V": -50}, "v_stop_V = -50 is outside the allowed range [-5, 5] V "
         "(station limit max_abs_voltage_V)"),
        ("forming", {"v_start_V": -6, "v_stop_V": 1}, "v_start_V = -6 is outside the allowed range "
         "[-5, 5] V (station limit max_abs_voltage_V)"),
        ("iv-sweep", {"v_stop_V": -50}, "v_stop_V = -50 is outside the allowed range [-5, 5] V "
         "(station limit max_abs_voltage_V)"),
    ],
)  # fmt: skip
def test_negative_values_keep_their_sign(
    tmp_path: Path, protocol: str, params: dict[str, Any], message: str
) -> None:
    assert refused(tmp_path, protocol, params) == message


def test_a_negative_ramp_in_a_sequence_keeps_its_sign(tmp_path: Path) -> None:
    path = tmp_path / "ramp.yaml"
    path.write_text("steps:\n  - ramp: {start_V: 0, stop_V: -9, step_V: 0.5, compliance_A: 1.0e-4}\n")
    assert refused(tmp_path, "sequence", {"program": str(path)}) == (
        "steps[0].stop_V = -9 is outside the allowed range [-5, 5] V (station limit max_abs_voltage_V)"
    )


# --------------------------------------------------------------------------- measured activation
@pytest.fixture
def data_dir(tmp_path: Path) -> str:
    return str(write_tiny_mnist(tmp_path / "mnist", 60, 20))


def training(data_dir: str, activation: str) -> dict[str, Any]:
    return {"synapse": "fp", "activation": activation, "data_dir": data_dir, "epochs": 1, "train_limit": 20}


@pytest.mark.parametrize(
    ("activation", "message"),
    [
        ("iv-run:999", "activation: 'iv-run:999' names run 999, which is not in this database (give an "
         "I-V run of the same database: dc-iv, iv-sweep or a sequence ramp)"),
        ("iv-run:1", "activation: run 1 has no I-V readings (kinds iv, ramp, forming)"),
        ("iv-run:1:A:0:0", "activation: run 1 has no I-V readings (kinds iv, ramp, forming)"),
    ],
)  # fmt: skip
def test_a_measured_activation_names_an_iv_run_before_the_run_is_recorded(
    tmp_path: Path, data_dir: str, activation: str, message: str
) -> None:
    store = Store(tmp_path / "lab.sqlite")
    RunEngine(store).run("conductance-map", twin_station(), {}, plot=False)  # run 1: not an I-V run
    with pytest.raises(ConfigError) as info:
        RunEngine(store).run("hybrid-training", twin_station(), training(data_dir, activation))
    assert str(info.value) == message
    assert list(store.runs_df()["id"]) == [1]  # no run row for the refused training
    prepare("hybrid-training", twin_station(), training(data_dir, activation))  # no store: not checked


def test_a_measured_activation_of_an_iv_run_is_accepted(tmp_path: Path, data_dir: str) -> None:
    store = Store(tmp_path / "lab.sqlite")
    iv = RunEngine(store).run(
        "dc-iv", twin_station(), {"cells": "0,0", "cycles": 1, "v_step_V": 0.2}, plot=False
    )
    prepare("hybrid-training", twin_station(), training(data_dir, f"iv-run:{iv.run_id}"), store)
    with pytest.raises(ConfigError, match="not in this database"):
        prepare("hybrid-training", twin_station(), training(data_dir, f"iv-run:{iv.run_id + 1}"), store)
    assert len(store.runs_df()) == 1


# --------------------------------------------------------------------------- write-verify targets
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"target_S": 1}, "target_S = 1 is outside the allowed range 0 < target_S <= 0.02 S (a read at "
         "read_voltage_V 0.5 V within 0.01 A) (station limit max_compliance_A)"),
        ({"target_S": 1e-5, "target_max_S": 0.5}, "target_max_S = 0.5 is outside the allowed range "
         "0 < target_max_S <= 0.02 S (a read at read_voltage_V 0.5 V within 0.01 A) (station limit "
         "max_compliance_A)"),
    ],
)  # fmt: skip
def test_write_verify_refuses_targets_the_station_cannot_read(
    tmp_path: Path, params: dict[str, Any], message: str
) -> None:
    assert refused(tmp_path, "write-verify", params) == message


def test_write_verify_targets_file_beyond_the_readable_range(tmp_path: Path) -> None:
    path = tmp_path / "targets.csv"
    rows = [",".join(["2e-5"] * 8)] * 8
    rows[0] = "0.05," + ",".join(["2e-5"] * 7)
    path.write_text("\n".join(rows) + "\n")
    assert refused(tmp_path, "write-verify", {"targets_file": str(path), "cells": "all"}) == (
        "targets_file = 0.05 is outside the allowed range 0 < targets_file <= 0.02 S (a read at "
        "read_voltage_V 0.5 V within 0.01 A) (station limit max_compliance_A)"
    )


def test_write_verify_refuses_targets_outside_the_arrays_calibrated_window(tmp_path: Path) -> None:
    # the twin station's array A: 1 um Mo/TiOx devices, a nominal window of about 5 to 50 uS
    _, _, station = prepare("write-verify", twin_station(), {"target_S": 2e-5})
    window = station.arrays[0].window_S
    assert window is not None and window[0] == pytest.approx(4.986e-6, rel=1e-2)
    assert window[1] == pytest.approx(4.986e-5, rel=1e-2)
    lo, hi = window
    assert refused(tmp_path, "write-verify", {"target_S": 1e-3}) == (
        f"target_S = 0.001 is outside the allowed range {lo:.4g} S <= target_S <= {hi:.4g} S (the array's "
        "calibrated window) (station limit arrays.A.window_S)"
    )
    assert refused(tmp_path, "write-verify", {"target_S": 1e-6, "target_max_S": 2e-5}) == (
        f"target_S = 1e-06 is outside the allowed range {lo:.4g} S <= target_S <= {hi:.4g} S (the array's "
        "calibrated window) (station limit arrays.A.window_S)"
    )


def test_a_station_declares_the_window_of_its_physical_arrays(tmp_path: Path) -> None:
    from hil.station import parse_station

    data = twin_station().snapshot()
    data["arrays"][0]["window_S"] = [1e-6, 1e-5]
    station = parse_station(data)
    with pytest.raises(LimitError, match=r"target_S = 2e-05 is outside the allowed range 1e-06 S <= target_S <= 1e-05 S"):
        prepare("write-verify", station, {"target_S": 2e-5})
    data["arrays"][0]["window_S"] = [1e-5, 1e-6]
    with pytest.raises(ConfigError, match=r"window_S must be \(Gmin, Gmax\) with 0 <= Gmin < Gmax <= 1 S"):
        parse_station(data)
