"""A measured neuron I-V as an activation: interpolation, derivative, and from a twin NDR device."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hil.errors import ConfigError
from protocols.training.measured_activation import (
    MeasuredActivation,
    activation_from_run,
    first_peak,
    pchip_slopes,
)
from sim_backend.ndr_neuron import ndr_current
from sim_backend.preset import load_preset
from tests.helpers import new_store, run, twin_station


def test_pchip_reproduces_cubics_slopes_and_keeps_monotone_data_monotone() -> None:
    x = np.linspace(0.0, 2.0, 9)
    # straight line: exact slopes
    assert np.allclose(pchip_slopes(x, 3 * x + 1), 3.0)
    # flat stretch next to a rise: no overshoot (slope 0 where the data turn)
    y = np.array([0, 0, 0, 1, 2, 3, 3, 3, 3], dtype=float)
    act = MeasuredActivation(tuple(x), tuple(y), input_scale_V=1.0, output_scale_A=1.0)
    z = np.linspace(0, 2, 801)
    f = act.f(z)
    assert f.min() >= -1e-12 and f.max() <= 3 + 1e-12 and np.all(np.diff(f) >= -1e-12)


def test_activation_interpolates_a_known_curve_and_its_derivative() -> None:
    model = load_preset("ndr_neuron_yang2024").neuron
    assert model is not None
    v = np.linspace(-4.0, 4.0, 161)  # 50 mV apart, as a sweep would measure
    act = MeasuredActivation(tuple(v), tuple(ndr_current(v, model)), input_scale_V=0.8, output_scale_A=20e-6)
    z = np.linspace(-4.9, 4.9, 997)  # off the measured points
    exact = ndr_current(z * 0.8, model) / 20e-6
    inside = np.abs(z * 0.8) <= 4.0
    assert np.max(np.abs(act.f(z)[inside] - exact[inside])) < 2e-3
    h = 1e-6
    numeric = (ndr_current((z + h) * 0.8, model) - ndr_current((z - h) * 0.8, model)) / (2 * h) / 20e-6
    # PCHIP slopes are first-order accurate: within 1 % of the largest slope, except within one
    # measured step of 0 V, where the model's curvature jumps (its |V| terms)
    smooth = inside & (np.abs(z * 0.8) > 0.05)
    assert np.max(np.abs(act.df(z)[smooth] - numeric[smooth])) < 0.01 * np.abs(numeric).max()
    # the derivative is exactly that of the interpolant (a finite difference of f agrees)
    fd = (act.f(z + 1e-7) - act.f(z - 1e-7)) / 2e-7
    assert np.allclose(act.df(z)[inside], fd[inside], atol=1e-5)
    # outside the measurement: ends held, derivative 0
    assert act.f(np.array([10.0]))[0] == pytest.approx(act.f(np.array([5.0]))[0])
    assert act.df(np.array([10.0, -10.0])).tolist() == [0.0, 0.0]


def test_default_scales_put_the_peak_at_one() -> None:
    model = load_preset("ndr_neuron_yang2024").neuron
    assert model is not None
    v = np.linspace(0.0, 4.0, 81)
    i = ndr_current(v, model)
    k = first_peak(v, i)
    assert v[k] == pytest.approx(v[np.argmax(i)])
    act = MeasuredActivation(tuple(v), tuple(i))
    assert act.f(np.array([1.0]))[0] == pytest.approx(1.0)
    assert act.df(np.array([0.5]))[0] > 0 and act.df(np.array([2.0]))[0] < 0  # rise, then NDR


def test_activation_from_a_dc_iv_run_on_the_twin_ndr_neuron(tmp_path: Path) -> None:
    station = twin_station(
        arrays=[
            {"name": "A", "rows": 2, "cols": 2, "diameter_m": 1e-6},
            {"name": "NEURON", "rows": 1, "cols": 2, "diameter_m": 1e-6, "preset": "ndr_neuron_yang2024"},
        ]
    )
    store = new_store(tmp_path)
    outcome = run(
        store,
        "dc-iv",
        station,
        array="NEURON",
        cells="0,1",
        cycles=2,
        v_set_V=4.0,
        v_reset_V=-4.0,
        v_step_V=0.05,
    )
    act = activation_from_run(store, outcome.run_id)
    assert act.name == f"measured:run-{outcome.run_id}:NEURON(0,1)"
    scale_v, scale_i = act.scales
    assert scale_v == pytest.approx(0.85, abs=0.06)  # the NDR peak of the shipped model
    model = load_preset("ndr_neuron_yang2024").neuron
    assert model is not None
    # the activation follows the device's closed form up to its device-to-device scale and read noise
    z = np.linspace(0.1, 4.0, 50)
    ratio = act.f(z) * scale_i / ndr_current(z * scale_v, model)
    assert np.std(ratio) / np.mean(ratio) < 0.01
    summary_peak = act.f(np.array([1.0]))[0]
    assert summary_peak == pytest.approx(1.0, abs=0.01)
    # training sees the interface it expects: f(z) and df(z, y)
    y = act.f(z)
    assert act.df(z, y).shape == z.shape


def test_activation_from_run_needs_iv_readings_and_a_device(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(store, "conductance-map", twin_station())
    with pytest.raises(ConfigError, match="no I-V readings"):
        activation_from_run(store, outcome.run_id)
    iv = run(store, "dc-iv", twin_station(), cells="0,0;0,1", cycles=1, v_step_V=0.2)
    with pytest.raises(ConfigError, match="several cols"):
        activation_from_run(store, iv.run_id)
    assert activation_from_run(store, iv.run_id, col=1).name.endswith("A(0,1)")
