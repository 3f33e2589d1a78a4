"""The twin's new device models: wear-out (endurance) and the NDR neuron, against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.types import ArraySpec, Pulse
from sim_backend.array_model import TwinArray
from sim_backend.devices import make_array
from sim_backend.ndr_neuron import NeuronArray, ndr_current
from sim_backend.preset import PresetError, load_preset
from sim_backend.twin import TwinBackend
from sim_backend.wear import WearingTwinArray

SPEC = ArraySpec("A", 4, 4, math.pi * (0.5e-6) ** 2)


def test_array_factory_picks_the_model() -> None:
    base = load_preset("mo_tiox_choi2021")
    assert type(make_array(SPEC, base)) is TwinArray
    assert isinstance(make_array(SPEC, base.with_overrides(endurance_cycles=10)), WearingTwinArray)
    assert isinstance(make_array(SPEC, load_preset("ndr_neuron_yang2024")), NeuronArray)


def test_endurance_leaves_the_fabricated_devices_unchanged() -> None:
    base = load_preset("mo_tiox_choi2021").with_overrides(stuck_fraction=0.2)
    plain = TwinArray(SPEC, base, seed=5)
    wearing = WearingTwinArray(SPEC, base.with_overrides(endurance_cycles=10), seed=5)
    assert np.array_equal(plain.g_lo, wearing.g_lo) and np.array_equal(plain.stuck, wearing.stuck)


def test_wear_accumulates_the_state_change_and_fails_at_the_endurance() -> None:
    preset = load_preset("mo_tiox_choi2021").with_overrides(
        endurance_cycles=3.0,
        endurance_sigma=0.0,
        c2c_sigma_over_mu=0.0,
        stuck_fraction=0.0,
        retention_tau_s=None,
    )
    arr = WearingTwinArray(SPEC, preset, seed=0)
    assert np.allclose(arr.endurance, 6.0)  # 3 full cycles, 2 wear units each
    for cycle in range(3):
        arr.apply_pulses(None, 2.0, 100e-6, 60, 0.0)  # Gmin -> Gmax: +1
        arr.apply_pulses(None, -4.0, 100e-6, 5, 0.0)  # Gmax -> Gmin: +1
        assert np.allclose(arr.wear, 2.0 * (cycle + 1))
    # worn out after the third reset: stuck at Gmin, pulses no longer move them
    assert arr.stuck.all()
    arr.apply_pulses(None, 2.0, 100e-6, 60, 0.0)
    assert np.allclose(arr.x, 0.0)


def test_wear_out_in_a_backend_train() -> None:
    preset = load_preset("mo_tiox_choi2021").with_overrides(
        endurance_cycles=2.0, endurance_sigma=0.0, stuck_fraction=0.0
    )
    twin = TwinBackend([SPEC], preset)
    cells = [(0, 0)]
    for _ in range(2):
        twin.pulse("A", cells, Pulse(2.0, 100e-6), 60)
        twin.pulse("A", cells, Pulse(-4.0, 100e-6), 5)
    g_dead = twin.read("A", cells).flat_conductance_S[0]
    twin.pulse("A", cells, Pulse(2.0, 100e-6), 60)
    assert twin.read("A", cells).flat_conductance_S[0] == pytest.approx(g_dead, rel=0.02)


def test_ndr_current_closed_form() -> None:
    model = load_preset("ndr_neuron_yang2024").neuron
    assert model is not None
    v = np.array([0.4, 0.8, 2.0, -0.8])
    expected = model.peak_current_A * (np.abs(v) / 0.8) * np.exp(
        1 - np.abs(v) / 0.8
    ) + model.valley_conductance_S * np.abs(v)
    assert np.allclose(ndr_current(v, model), np.sign(v) * expected)
    # negative differential resistance between the peak and the valley
    grid = np.linspace(0.0, 4.0, 401)
    slope = np.gradient(ndr_current(grid, model), grid)
    assert (slope < 0).any() and slope[0] > 0 and slope[-1] > 0


def test_neuron_array_in_the_twin_backend() -> None:
    preset = load_preset("ndr_neuron_yang2024").with_overrides(read_noise_rel=0.0, d2d_sigma=0.0)
    twin = TwinBackend([ArraySpec("N", 1, 2, math.pi * (0.5e-6) ** 2)], preset)
    model = preset.neuron
    assert model is not None
    iv = twin.iv_sweep("N", 0, 0, np.array([0.5, 0.85, 2.0, 3.0]), compliance_A=1e-3)
    assert np.allclose(iv.current_A, ndr_current(iv.voltage_V, model))
    # compliance clamps the current on the rising branch, at the voltage that draws it
    clamped = twin.iv_sweep("N", 0, 1, np.array([0.85]), compliance_A=10e-6)
    assert clamped.in_compliance[0] and clamped.current_A[0] == pytest.approx(10e-6)
    assert float(ndr_current(clamped.voltage_V[0], model)) == pytest.approx(10e-6, rel=1e-6)
    # not programmable: pulses leave it as it was
    before = twin.read("N").conductance_S.copy()
    twin.pulse("N", [(0, 0)], Pulse(3.0, 1e-3), 10)
    assert np.array_equal(before, twin.read("N").conductance_S)


def test_bad_neuron_preset_is_refused() -> None:
    with pytest.raises(PresetError, match="peak_voltage_V"):
        load_preset("ndr_neuron_yang2024").with_overrides(neuron={"peak_voltage_V": -1.0})
