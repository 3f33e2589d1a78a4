"""The shared protocol steps: sweep points against their closed form, the sweep-steps check, I-V
logging (one reading per point, the columns every I-V protocol writes), the strong reset, and every
protocol naming its analysis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hil.backends import open_backend
from hil.protocol import NullProgress, RunContext, available_protocols
from hil.station import Station, parse_station
from hil.store import Store
from hil.types import IVResult, Pulse
from protocols.analysis.extract import analyze_cycling, analyze_readings, analyzer_of
from protocols.steps import MAX_SWEEP_STEPS, check_sweep_steps, log_iv, strong_reset, sweep_iv, sweep_points


def station() -> Station:
    return parse_station(
        {
            "name": "steps",
            "backend": "twin",
            "twin": {"preset": "mo_tiox_choi2021", "seed": 0},
            "arrays": [{"name": "A", "rows": 4, "cols": 4, "diameter_m": 1e-6}],
        }
    )


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[RunContext]:
    st = station()
    store = Store(tmp_path / "runs.sqlite")
    run_id = store.create_run("steps", {}, st.snapshot(), "twin")
    with open_backend(st, 0) as backend:
        yield RunContext(run_id, backend, store, st, 0, NullProgress())


# ---------------------------------------------------------------------- sweep points
@pytest.mark.parametrize(
    ("start", "stop", "step"),
    [
        (0.0, 3.0, 0.03),
        (0.0, 5.0, 0.05),
        (0.0, -3.0, 0.03),
        (-1.0, 2.0, 0.25),
        (0.2, 1.7, 0.07),
        (0.5, 0.5, 0.1),
    ],
)
def test_sweep_points_closed_form(start: float, stop: float, step: float) -> None:
    n = round(abs(stop - start) / step)
    k = np.arange(n + 1)
    closed = np.round(start + (stop - start) * k / max(n, 1), 9)
    up = sweep_points(start, stop, step)
    assert len(up) == n + 1
    np.testing.assert_allclose(up, closed, rtol=0, atol=1e-9)
    assert up[0] == start and up[-1] == stop
    both = sweep_points(start, stop, step, return_sweep=True)
    assert len(both) == 2 * n + 1
    np.testing.assert_array_equal(both[: n + 1], up)
    np.testing.assert_array_equal(both[n:], up[::-1])  # the turning point once, back to start_V


def test_sweep_points_round_to_a_nanovolt() -> None:
    v = sweep_points(0.0, 1.0, 0.1)
    np.testing.assert_array_equal(v, np.round(v, 9))
    assert 0.3 in v.tolist() and 0.7 in v.tolist()


def test_check_sweep_steps_bounds_and_messages() -> None:
    check_sweep_steps(0.0, 1.0, 1.0)  # one step
    check_sweep_steps(0.0, 1.0, 1.0 / MAX_SWEEP_STEPS)  # the most steps
    with pytest.raises(
        ValueError, match=r"^v_step_V = 5 V gives 1 steps from 0 to 3 V; allowed: 1 to 100000 steps$"
    ):
        check_sweep_steps(0.0, 3.0, 5.0)
    with pytest.raises(ValueError, match=r"gives 200000 steps from 0 to 2 V"):
        check_sweep_steps(0.0, 2.0, 1e-5)
    with pytest.raises(
        ValueError, match=r"^v_step_V = 4 V gives 1 steps to v_set_V = 3 V; allowed: 1 to 100000 steps$"
    ):
        check_sweep_steps(0.0, 3.0, 4.0, span="to v_set_V = 3 V")
    check_sweep_steps(0.3, 0.3, 0.1, step_name="step_V", single_point_ok=True)  # a single point
    with pytest.raises(ValueError, match=r"^step_V = 1e-05 V gives 200000 points; allowed: at most 100000$"):
        check_sweep_steps(0.0, 2.0, 1e-5, step_name="step_V", single_point_ok=True)


# ---------------------------------------------------------------------- I-V logging
def test_log_iv_one_reading_per_point_with_chord_conductance(ctx: RunContext) -> None:
    v = np.array([0.0, 0.5, 1.0, 0.5, 0.0])
    i = np.array([0.0, 1e-6, 4e-6, 2e-6, 1e-9])
    t = np.arange(5) * 1e-3
    iv = IVResult("A", 1, 2, v, i, t, 1e-4)
    n = log_iv(ctx, iv, "iv", cycle=3, step=np.arange(10, 15))
    assert n == 5
    df = ctx.store.readings_df(ctx.run_id)
    assert len(df) == 5
    for column in (
        "kind",
        "array",
        "row",
        "col",
        "voltage_V",
        "current_A",
        "conductance_S",
        "t_s",
        "cycle",
        "step",
    ):
        assert column in df.columns
    assert (df["kind"] == "iv").all() and (df["array"] == "A").all()
    assert (df["row"] == 1).all() and (df["col"] == 2).all() and (df["cycle"] == 3).all()
    np.testing.assert_array_equal(df["step"], np.arange(10, 15))
    np.testing.assert_array_equal(df["voltage_V"], v)
    np.testing.assert_array_equal(df["current_A"], i)
    np.testing.assert_allclose(df["t_s"], t)
    g = df["conductance_S"].to_numpy(float)
    assert np.isnan(g[[0, 4]]).all()  # no chord conductance at 0 V
    np.testing.assert_allclose(g[1:4], i[1:4] / v[1:4])


def test_sweep_iv_sweeps_and_logs_every_point(ctx: RunContext) -> None:
    volts = sweep_points(0.0, 1.0, 0.1, return_sweep=True)
    iv = sweep_iv(ctx, "A", 0, 1, volts, 1e-4, 1e-3, "ramp", pulse=np.arange(len(volts)), step=7)
    df = ctx.store.readings_df(ctx.run_id)
    assert len(df) == len(volts) == len(iv.voltage_V)
    assert (df["kind"] == "ramp").all() and (df["step"] == 7).all()
    np.testing.assert_array_equal(df["pulse"], np.arange(len(volts)))
    np.testing.assert_array_equal(df["current_A"], iv.current_A)


# ---------------------------------------------------------------------- strong reset
def test_strong_reset_commits_one_train_and_its_checkpoint(ctx: RunContext) -> None:
    cells = np.array([[0, 0], [1, 1]])
    train = strong_reset(ctx, "A", cells, Pulse(-4.0, 1e-4), 5, checkpoint={"next_cycle": 1}, cycle=0)
    pulses = ctx.store.pulses_df(ctx.run_id)
    assert len(pulses) == 2 and (pulses["purpose"] == "reset").all()
    assert (
        (pulses["count"] == 5).all()
        and (pulses["amplitude_V"] == -4.0).all()
        and (pulses["cycle"] == 0).all()
    )
    assert train.count == 5 and train.conductance_S is None
    assert ctx.store.readings_df(ctx.run_id).empty  # no reads
    assert ctx.store.load_checkpoint(ctx.run_id) == {"next_cycle": 1}
    strong_reset(ctx, "A", cells, Pulse(-4.0, 1e-4), 2, purpose="precondition")
    assert (ctx.store.pulses_df(ctx.run_id)["purpose"] == "precondition").sum() == 2


# ---------------------------------------------------------------------- analysis keyed on the protocol
def test_every_characterisation_protocol_names_its_analysis() -> None:
    for name, cls in available_protocols().items():
        if cls.__module__.startswith("protocols.training"):
            continue
        assert callable(getattr(cls, "analysis", None)), name
        assert analyzer_of(name) is cls.analysis
    for name in ("potentiation-cycling", "pulse-response", "area-scaling"):
        assert analyzer_of(name) is analyze_cycling
    assert analyzer_of("no-such-protocol") is analyze_readings
    assert analyzer_of("hybrid-training") is analyze_readings
