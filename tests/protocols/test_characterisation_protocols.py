"""Every characterisation protocol end to end on the twin (small sizes), with physics checks,
plus bad input (a clear error naming the field, and no run row)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hil.engine import RunEngine
from hil.errors import ConfigError
from hil.protocol import available_protocols
from hil.safety import LimitError
from protocols.analysis.extract import analyze
from tests.helpers import new_store, run, twin_station

NEW = ("forming", "dc-iv", "pulse-response", "endurance", "retention", "write-verify", "read-disturb",
       "area-scaling", "threshold-search", "sequence")  # fmt: skip


def test_protocols_are_registered() -> None:
    assert set(NEW) <= set(available_protocols())


def test_forming_ramp_finds_the_forming_voltage(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"forming_free": False, "forming_voltage_V": 3.2})
    outcome = run(store, "forming", station, cells="0,0;1,1", v_step_V=0.1, compliance_A=1e-4)
    s = analyze(store, outcome.run_id).summary
    assert s["formed_fraction"] == 1.0
    assert s["forming_voltage_V"] == pytest.approx(3.2)
    df = store.readings_df(outcome.run_id)
    ramp = df[df["kind"] == "forming"]
    # the ramp is recorded point by point and stops at the forming segment (10 points a segment)
    assert ramp.groupby(["row", "col"])["step"].max().max() < 40
    assert (np.abs(ramp["current_A"]) <= 1e-4 * 1.01).all()  # compliance honoured (up to read noise)
    ro = df[df["kind"] == "readout"]
    before = ro[ro["step"] == 0]["conductance_S"].to_numpy()
    after = ro[ro["step"] == 1]["conductance_S"].to_numpy()
    assert np.all(after > 50 * before)  # pristine 1 % of Gmin, formed at least Gmin


def test_forming_reports_devices_that_do_not_form(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"forming_free": False, "forming_voltage_V": 4.5})
    outcome = run(store, "forming", station, cells="0,0", v_stop_V=3.0, v_step_V=0.1)
    s = analyze(store, outcome.run_id).summary
    assert s["formed_fraction"] == 0.0 and s["forming_voltage_V"] is None


def test_dc_iv_bipolar_loop(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(store, "dc-iv", twin_station(), cycles=2, v_step_V=0.1)
    df = store.readings_df(outcome.run_id)
    iv = df[df["kind"] == "iv"]
    assert (
        set(iv["pulse"]) == {0, 1}
        and iv["voltage_V"].max() == pytest.approx(3.0)
        and iv["voltage_V"].min() == pytest.approx(-3.0)
    )
    s = analyze(store, outcome.run_id).summary
    # the set half takes the device up, the reset half back down: a read-out window and a loop
    assert s["on_off_ratio"] > 5
    assert s["hysteresis_area_W"] > 0
    events = store.events_df(outcome.run_id)
    assert (events["kind"] == "compliance").sum() == 4  # set before each half's output turns on


def test_pulse_response_logs_both_branches(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(store, "pulse-response", twin_station(), cells="0,0;0,1", cycles=2, pulses=20)
    df = store.readings_df(outcome.run_id)
    counts = df.groupby("kind").size()
    assert counts["potentiation"] == counts["depression"] == 2 * 2 * 20
    pot = df[(df["kind"] == "potentiation") & (df["cycle"] == 1)].groupby("pulse")["conductance_S"].mean()
    dep = df[(df["kind"] == "depression") & (df["cycle"] == 1)].groupby("pulse")["conductance_S"].mean()
    assert pot.is_monotonic_increasing and dep.is_monotonic_decreasing


def test_endurance_runs_until_the_devices_wear_out(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"endurance_cycles": 25, "endurance_sigma": 0.2, "stuck_fraction": 0.0})
    outcome = run(store, "endurance", station, cells="0:4,0:4", cycles=500, pulses=60)
    s = analyze(store, outcome.run_id).summary
    assert s["failed_fraction"] == 1.0
    assert s["cycles_run"] < 500  # stopped on failure, not the count
    # a full swing wears 2 units: the devices last about endurance_cycles cycles
    assert s["endurance_cycles_median"] == pytest.approx(25, rel=0.3)
    assert s["on_off_ratio"] > 5


def test_endurance_stops_at_the_count_without_wear(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(
        store, "endurance", twin_station({"stuck_fraction": 0.0}), cells="0,0", cycles=30, read_every=10
    )
    s = analyze(store, outcome.run_id).summary
    assert s["failed_fraction"] == 0.0 and s["cycles_run"] == 30
    df = store.readings_df(outcome.run_id)
    assert sorted(df[df["kind"] == "endurance-set"]["cycle"]) == [0, 10, 20, 29]


def test_retention_fits_the_twins_time_constant(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"retention_tau_s": 2e5, "read_noise_rel": 0.0005})
    outcome = run(store, "retention", station, cells="0:2,0:2", t_first_s=1.0, t_last_s=1e7, points=20)
    s = analyze(store, outcome.run_id).summary
    assert s["retention_tau_s"] == pytest.approx(2e5, rel=0.05)
    events = store.events_df(outcome.run_id)
    elapsed = [
        d["elapsed_s"] for k, d in zip(events["kind"], events["detail"], strict=True) if k == "retention-read"
    ]
    assert elapsed[0] == pytest.approx(0.0, abs=1e-3) and elapsed[-1] == pytest.approx(1e7, rel=1e-6)
    assert np.all(np.diff(elapsed) > 0)


class InterruptAfter:
    """A progress display that raises Ctrl-C after ``n`` advances (an interruption mid-run)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def start(self, total: float | None, description: str) -> None:
        return None

    def advance(self, amount: float = 1, status: str | None = None) -> None:
        if amount:
            self.n -= 1
            if self.n < 0:
                raise KeyboardInterrupt("test interruption")


def test_retention_resumes_after_interruption(tmp_path: Path) -> None:
    params: dict[str, Any] = {"cells": "0:2,0:2", "t_first_s": 1.0, "t_last_s": 1e7, "points": 12}
    station = twin_station({"retention_tau_s": 1e6, "read_noise_rel": 0.0})
    store = new_store(tmp_path)
    engine = RunEngine(store, progress=lambda: InterruptAfter(6))
    first = engine.run("retention", station, params, plot=False)
    assert first.status == "interrupted"
    done = store.readings_df(first.run_id)
    assert sorted(done[done["kind"] == "retention"]["step"].unique()) == list(
        range(7)
    )  # 7th read, then Ctrl-C
    resumed = RunEngine(store).resume(first.run_id, plot=False)
    assert resumed.status == "completed"
    df = store.readings_df(first.run_id)
    steps = df[df["kind"] == "retention"]["step"]
    assert sorted(steps.unique()) == list(range(13)) and steps.value_counts().max() == 4  # no read twice
    # the resumed run continues the same decay: identical to an uninterrupted run
    reference = run(new_store(tmp_path, "ref.sqlite"), "retention", station, **params)
    ref_df = new_store(tmp_path, "ref.sqlite").readings_df(reference.run_id)
    a = df[df["kind"] == "retention"].sort_values(["step", "row", "col"])["conductance_S"].to_numpy()
    b = ref_df[ref_df["kind"] == "retention"].sort_values(["step", "row", "col"])["conductance_S"].to_numpy()
    assert np.allclose(a, b, rtol=1e-9)
    assert (store.events_df(first.run_id)["kind"] == "replayed-programming").sum() == 1


def test_write_verify_converges_and_reports_misses(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"stuck_fraction": 0.0}, seed=4)
    outcome = run(store, "write-verify", station, cells="0:3,0:3", target_S=10e-6, target_max_S=40e-6)
    s = analyze(store, outcome.run_id).summary
    assert s["converged_fraction"] == 1.0 and s["not_converged"] == ""
    assert s["final_error_rms_rel"] < 0.05
    # a stuck device cannot reach its target: it is reported, the others still converge
    stuck_station = twin_station({"stuck_fraction": 1.0, "stuck_on_fraction": 0.0}, seed=4)
    missed = run(store, "write-verify", stuck_station, cells="0,0", target_S=30e-6, max_iterations=5)
    ms = analyze(store, missed.run_id).summary
    assert ms["converged_fraction"] == 0.0 and ms["not_converged"] == "(0,0)"
    events = store.events_df(missed.run_id)
    result = events[events["kind"] == "write-verify-result"]["detail"].iloc[0]
    assert result["not_converged"] == [[0, 0]]


def test_write_verify_targets_file(tmp_path: Path) -> None:
    targets = np.full((8, 8), np.nan)
    targets[2, 3] = 25e-6
    path = tmp_path / "targets.csv"
    np.savetxt(path, targets, delimiter=",")
    store = new_store(tmp_path)
    outcome = run(
        store, "write-verify", twin_station({"stuck_fraction": 0.0}), cells="all", targets_file=str(path)
    )
    final = store.readings_df(outcome.run_id).query("kind == 'verify-final'")
    assert list(zip(final["row"], final["col"], strict=True)) == [(2, 3)]
    assert final["conductance_S"].iloc[0] == pytest.approx(25e-6, rel=0.05)


def test_read_disturb_below_and_at_the_threshold(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"read_noise_rel": 0.001, "stuck_fraction": 0.0})
    quiet = run(store, "read-disturb", station, cells="0:2,0:2", stress_reads=1000, blocks=4)
    loud = run(
        store, "read-disturb", station, cells="0:2,0:2", stress_reads=1000, blocks=4, stress_voltage_V=1.0
    )
    q = analyze(store, quiet.run_id).summary
    loud_s = analyze(store, loud.run_id).summary
    assert q["read_disturb_max_rel"] < 0.01  # 0.5 V is below the 1 V switching threshold: noise only
    assert loud_s["read_disturb_final_median_rel"] > 0.5  # at the threshold reads potentiate
    assert q["read_disturb_reads"] == loud_s["read_disturb_reads"] == 1000


def test_threshold_search_finds_the_set_and_reset_thresholds(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station(
        {"set_threshold_V": 1.3, "reset_threshold_V": 0.9, "stuck_fraction": 0.0, "read_noise_rel": 0.0002}
    )
    set_run = run(store, "threshold-search", station, cells="0:2,0:2", v_step_V=0.05)
    # near Gmax a depression step below the reference is small: a finer criterion
    reset_run = run(
        store, "threshold-search", station, cells="0:2,0:2", v_step_V=0.05, polarity="reset", delta_rel=0.003
    )
    s = analyze(store, set_run.run_id).summary
    r = analyze(store, reset_run.run_id).summary
    assert s["switched_fraction"] == r["switched_fraction"] == 1.0
    assert 1.3 - 1e-9 <= s["threshold_V"] <= 1.3 + 0.1  # never below the threshold, within two steps
    assert -0.9 - 0.1 <= r["threshold_V"] <= -0.9 + 1e-9


def write_program(tmp_path: Path, text: str) -> str:
    path = tmp_path / "program.yaml"
    path.write_text(text)
    return str(path)


PROGRAM = """
array: A
cells: "0:2,0:2"
steps:
  - read: {label: before}
  - loop:
      count: 3
      steps:
        - pulse: {amplitude_V: 2.0, width_s: 1.0e-4, count: 5, read_after: true}
        - pulse: {amplitude_V: -4.0, width_s: 1.0e-4, count: 5, label: reset}
  - delay: {seconds: 100}
  - ramp: {cells: "0,0", start_V: 0, stop_V: 0.8, step_V: 0.1, compliance_A: 1.0e-4, return_sweep: true}
  - read: {label: after}
"""


def test_sequence_program_runs_every_block(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(store, "sequence", twin_station(), program=write_program(tmp_path, PROGRAM))
    df = store.readings_df(outcome.run_id)
    counts = df.groupby("kind").size().to_dict()
    assert counts == {"before": 4, "pulse-read": 3 * 4 * 5, "ramp": 17, "after": 4}
    pr = df[df["kind"] == "pulse-read"]
    assert sorted(pr["cycle"].unique()) == [0, 1, 2] and set(pr["step"]) == {2}
    pulses = store.pulses_df(outcome.run_id)
    assert (pulses["purpose"] == "reset").sum() == 3 * 4
    # the delay advanced the (simulated) clock by its 100 s
    t_before_after = df[df["kind"] == "ramp"]["t_s"].min() - pr["t_s"].max()
    assert t_before_after >= 100
    events = store.events_df(outcome.run_id)
    assert events["kind"].iloc[0] == "program"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - pulse: {amplitude_V: 9.0, width_s: 1.0e-4}\n", "amplitude_V = 9"),
        ("steps:\n  - jump: {to: 3}\n", "unknown block 'jump'"),
        ("steps:\n  - read: {voltage_V: 0.5, array: Z}\n", "'Z' is not an array"),
        ("steps:\n  - pulse: {amplitude_V: 1.0}\n", "width_s"),
        (
            "steps:\n  - loop: {count: 2000000, steps: [{loop: {count: 1000, steps: [{read: {}}]}}]}\n",
            "operations",
        ),
        ("steps: [\n", "not valid YAML"),
    ],
)
def test_sequence_rejects_bad_programs_before_any_run(tmp_path: Path, text: str, message: str) -> None:
    store = new_store(tmp_path)
    with pytest.raises((ConfigError, LimitError)) as info:
        RunEngine(store).run("sequence", twin_station(), {"program": write_program(tmp_path, text)})
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert store.runs_df().empty


@pytest.mark.parametrize(
    ("protocol", "params", "message"),
    [
        ("forming", {"v_stop_V": 8.0}, "v_stop_V = 8"),
        ("forming", {"compliance_A": 0.5}, "compliance_A = 0.5"),
        ("dc-iv", {"v_reset_V": 1.0}, "v_reset_V"),
        ("pulse-response", {"arrays": "A,Q"}, "'Q' is not an array"),
        ("endurance", {"fail_ratio": 0.5}, "fail_ratio"),
        ("retention", {"t_first_s": 10, "t_last_s": 1}, "t_last_s"),
        ("write-verify", {"targets_file": "/nonexistent.csv"}, "targets_file"),
        ("read-disturb", {"stress_voltage_V": 2.0}, "stress_voltage_V = 2"),
        ("area-scaling", {"diameters_nm": "100"}, "at least two diameters"),
        ("threshold-search", {"v_stop_V": 6.0}, "v_stop_V = 6"),
        ("sequence", {}, "program"),
        ("write-verify", {"cells": "9,9"}, "cells"),
    ],
)
def test_bad_input_is_refused_before_a_run_row(
    tmp_path: Path, protocol: str, params: dict[str, Any], message: str
) -> None:
    store = new_store(tmp_path)
    with pytest.raises((ConfigError, LimitError)) as info:
        RunEngine(store).run(protocol, twin_station(), params)
    assert message in str(info.value)
    assert store.runs_df().empty


def test_area_scaling_needs_declared_arrays_off_the_twin() -> None:
    from hil.engine import prepare

    station = twin_station().model_copy(
        update={"backend": "board", "instruments": {"b": {"model": "board", "resource": "x"}}}
    )
    with pytest.raises(ConfigError, match="D30nm"):
        prepare("area-scaling", station, {})


def test_every_new_protocol_draws_a_plot(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    station = twin_station({"forming_free": False, "endurance_cycles": 5})
    cases: dict[str, dict[str, Any]] = {
        "forming": {"v_step_V": 0.2},
        "dc-iv": {"cycles": 1, "v_step_V": 0.2},
        "pulse-response": {"cycles": 1, "pulses": 10},
        "endurance": {"cycles": 20},
        "retention": {"cells": "0,0", "points": 5},
        "write-verify": {"cells": "0,0", "max_iterations": 3},
        "read-disturb": {"cells": "0,0", "stress_reads": 10, "blocks": 2},
        "area-scaling": {"rows": 1, "cols": 1, "cycles": 1, "pulses": 60, "diameters_nm": "100,1000"},
        "threshold-search": {"cells": "0,0", "v_stop_V": 1.5},
        "sequence": {"program": write_program(tmp_path, PROGRAM)},
    }
    engine = RunEngine(store, plot_dir=tmp_path / "plots")
    for protocol, params in cases.items():
        outcome = engine.run(protocol, station, params)
        assert outcome.status == "completed", (protocol, outcome.error)
        assert outcome.plot is not None and outcome.plot.stat().st_size > 10_000, protocol
