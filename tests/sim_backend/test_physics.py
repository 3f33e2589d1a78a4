"""Closed-form checks of the twin's device physics (sim_backend/physics.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_backend import physics
from sim_backend.preset import DevicePreset, PresetError, available_presets, load_preset


@pytest.fixture
def preset() -> DevicePreset:
    return load_preset("mo_tiox_choi2021")


def test_shipped_preset_matches_the_paper(preset: DevicePreset) -> None:
    assert "mo_tiox_choi2021" in available_presets()
    assert preset.n_states == 50  # 50 states per device
    assert preset.c2c_sigma_over_mu == pytest.approx(0.34)  # measured programming variability
    assert preset.area_exponent == 1.0  # interfacial switching: G proportional to area
    assert preset.read_reference_V == 0.5  # read-out at 0.5 V
    assert preset.min_diameter_m == pytest.approx(30e-9) and preset.max_diameter_m == pytest.approx(1e-6)


def test_linear_potentiation_is_n_over_N() -> None:
    x0 = np.array([0.0, 0.2, 0.5])
    assert physics.potentiate(x0, 5, 0.0, 50) == pytest.approx(x0 + 5 / 50)
    # N nominal steps from Gmin reach exactly Gmax, never beyond
    assert physics.potentiate(np.zeros(1), 50, 0.0, 50)[0] == pytest.approx(1.0)
    assert physics.potentiate(np.zeros(1), 80, 0.0, 50)[0] == 1.0


@given(
    nu=st.floats(0.01, 8.0),
    x0=st.floats(0.0, 1.0),
    n1=st.integers(0, 60),
    n2=st.integers(0, 60),
)
@settings(max_examples=300, deadline=None)
def test_nonlinear_map_composes(nu: float, x0: float, n1: int, n2: int) -> None:
    """n1 steps then n2 steps equal n1 + n2 steps (the closed form is the iterated one-step map)."""
    x = np.array([x0])
    stepwise = physics.potentiate(physics.potentiate(x, n1, nu, 50), n2, nu, 50)
    direct = physics.potentiate(x, n1 + n2, nu, 50)
    # composition is exact until the clip at 1 (only reachable beyond N steps from 0)
    if direct[0] < 1.0:
        assert stepwise[0] == pytest.approx(direct[0], abs=1e-12)


def test_nonlinear_closed_form_values() -> None:
    nu, n_states = 2.0, 50
    a = math.exp(-nu / n_states)
    b = (1 - a) / (1 - math.exp(-nu))
    x = np.array([0.3])
    one = physics.potentiate(x, 1, nu, n_states)[0]
    assert one == pytest.approx(a * 0.3 + b)
    # from 0, N steps reach exactly 1; half of them give (1 - e^-nu/2) / (1 - e^-nu)
    assert physics.potentiate(np.zeros(1), n_states, nu, n_states)[0] == pytest.approx(1.0)
    half = physics.potentiate(np.zeros(1), n_states // 2, nu, n_states)[0]
    assert half == pytest.approx((1 - math.exp(-nu / 2)) / (1 - math.exp(-nu)))
    # larger steps first: the first step exceeds the last
    first = physics.potentiate(np.zeros(1), 1, nu, n_states)[0]
    last = 1.0 - physics.potentiate(np.zeros(1), n_states - 1, nu, n_states)[0]
    assert first > last


def test_depression_mirrors_potentiation() -> None:
    x = np.array([0.9, 0.4])
    for nu in (0.0, 1.5):
        assert physics.depress(x, 7, nu, 50) == pytest.approx(1 - physics.potentiate(1 - x, 7, nu, 50))
    assert physics.depress(np.array([0.5]), 1000, 2.0, 50)[0] == 0.0


def test_step_strength(preset: DevicePreset) -> None:
    assert physics.step_strength(preset, 2.0, 100e-6) == ("set", pytest.approx(1.0))
    assert physics.step_strength(preset, 0.5, 100e-6) == ("none", 0.0)  # reads do not disturb
    assert physics.step_strength(preset, -0.99, 1.0) == ("none", 0.0)
    # the strong reset: -4 V / 100 us counts as exp((4 - 2) / 0.5) = e^4 depression steps
    pol, s = physics.step_strength(preset, -4.0, 100e-6)
    assert pol == "reset" and s == pytest.approx(math.exp(4.0))
    # width dependence: 4x longer -> 4**0.5 = 2x the steps
    assert physics.step_strength(preset, 2.0, 400e-6)[1] == pytest.approx(2.0)


def test_iv_shape_passes_through_read_point() -> None:
    v = np.linspace(-3, 3, 61)
    assert physics.iv_shape(v, 0.5, None) == pytest.approx(v)
    f = physics.iv_shape(v, 0.5, 1.0)
    assert physics.iv_shape(0.5, 0.5, 1.0) == pytest.approx(0.5)
    assert f == pytest.approx(0.5 * np.sinh(v) / math.sinh(0.5))
    assert physics.iv_shape_inverse(f, 0.5, 1.0) == pytest.approx(v)
    assert np.all(np.diff(f) > 0)  # monotonic, odd
    assert f == pytest.approx(-f[::-1])


def test_retention_decay_closed_form() -> None:
    x = np.array([1.0, 0.5])
    assert physics.retention_decay(x, 1e7, 1e7) == pytest.approx(x / math.e)
    assert physics.retention_decay(x, 1e9, None) is x


def test_preset_area_scaling(preset: DevicePreset) -> None:
    a_ref = preset.reference_area_m2
    lo, hi = preset.g_range_S(a_ref)
    assert (lo, hi) == (pytest.approx(preset.g_min_S), pytest.approx(preset.g_max_S))
    lo10, hi10 = preset.g_range_S(a_ref / 10)
    assert lo10 == pytest.approx(lo / 10) and hi10 == pytest.approx(hi / 10)
    assert preset.step_S(a_ref / 10) == pytest.approx(preset.step_S(a_ref) / 10)


def test_preset_errors_name_the_field(tmp_path) -> None:
    with pytest.raises(PresetError, match="not a shipped preset"):
        load_preset("no-such-preset")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ng_min_S: 1.0e-6\ng_max_S: 5.0e-7\n")
    with pytest.raises(PresetError, match="g_max_S"):
        load_preset(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("name: x\ng_min_S: 1.0e-6\ng_max_S: 5.0e-6\nn_state: 40\n")
    with pytest.raises(PresetError, match="n_state"):
        load_preset(typo)
    with pytest.raises(PresetError, match="c2c_sigma_over_mu"):
        load_preset("mo_tiox_choi2021").with_overrides(c2c_sigma_over_mu=-1)
