"""Closed-form checks of the fits behind extraction and calibration."""

from __future__ import annotations

import math

import numpy as np
import pytest

from protocols.analysis.fitting import fit_branch, fit_exponential_decay, loglog_slope, phi, phi_unclipped
from protocols.analysis.preset_fit import fit_area_scaling


def test_phi_closed_forms() -> None:
    m = np.arange(0, 61)
    # linear: m / n, clipped at 1
    assert np.allclose(phi(m, 0.0, 40.0), np.minimum(m / 40.0, 1.0))
    # nonlinear: reaches exactly 1 after n pulses and is concave
    u = phi_unclipped(m, 2.0, 40.0)
    assert u[40] == pytest.approx(1.0)
    assert u[1] == pytest.approx((1 - math.exp(-2 / 40)) / (1 - math.exp(-2)))
    assert np.all(np.diff(u, 2) < 0)
    # tiny nu joins the linear limit continuously
    assert np.allclose(phi(m, 1e-12, 40.0), phi(m, 0.0, 40.0))


@pytest.mark.parametrize(("nu", "n"), [(0.0, 30.0), (0.7, 50.0), (2.5, 25.0)])
def test_fit_branch_recovers_noise_free_curves(nu: float, n: float) -> None:
    m = np.arange(1, 101)
    g = 2e-6 + 18e-6 * phi(m, nu, n)
    fit = fit_branch(g)
    assert fit.n == pytest.approx(n, rel=0.01)
    assert fit.nu == pytest.approx(nu, abs=0.03)
    # bounds within half a percent of the range (a grid fit, refined, not a solver to machine precision)
    assert abs(fit.a - 2e-6) < 0.005 * 18e-6
    assert abs(fit.g_end_S - 20e-6) < 0.005 * 18e-6
    assert fit.saturated


def test_fit_branch_depression_and_unsaturated_flag() -> None:
    m = np.arange(1, 81)
    dep = 20e-6 - 18e-6 * phi(m, 1.5, 40.0)
    fit = fit_branch(dep)
    assert fit.b < 0 and fit.n == pytest.approx(40.0, rel=0.01) and fit.nu == pytest.approx(1.5, abs=0.05)
    # a curve that never reaches its bound inside the pulses is flagged
    short = 2e-6 + 18e-6 * phi(np.arange(1, 21), 0.0, 50.0)
    assert not fit_branch(short).saturated


def test_fit_branch_with_noise_and_missing_points() -> None:
    rng = np.random.default_rng(1)
    m = np.arange(1, 101)
    g = 5e-6 + 40e-6 * phi(m, 1.0, 45.0)
    noisy = g * (1 + 0.002 * rng.standard_normal(g.shape))
    noisy[[3, 50]] = np.nan
    fit = fit_branch(noisy)
    assert fit.n == pytest.approx(45.0, rel=0.02)
    assert fit.nu == pytest.approx(1.0, abs=0.1)


def test_exponential_decay_fit() -> None:
    t = np.concatenate([[0.0], np.geomspace(1, 1e8, 30)])
    y = 5e-6 + 20e-6 * np.exp(-t / 3e6)
    c, a, tau = fit_exponential_decay(t, y)
    assert (
        tau == pytest.approx(3e6, rel=1e-3)
        and c == pytest.approx(5e-6, rel=1e-3)
        and a == pytest.approx(20e-6, rel=1e-3)
    )
    # with the level known, a short record (t << tau) still gives tau
    short = t[t <= 3e5]
    c2, _, tau2 = fit_exponential_decay(short, 5e-6 + 20e-6 * np.exp(-short / 3e6), offset=5e-6)
    assert c2 == 5e-6 and tau2 == pytest.approx(3e6, rel=1e-3)


def test_loglog_and_area_fit() -> None:
    area = np.array([1e-15, 1e-14, 1e-13, 1e-12])
    slope, _ = loglog_slope(area, 3.0 * area**0.8)
    assert slope == pytest.approx(0.8)
    ref = 7.85e-13
    exponent, lo, hi = fit_area_scaling(area, 4e-6 * (area / ref) ** 0.9, 40e-6 * (area / ref) ** 0.9, ref)
    assert exponent == pytest.approx(0.9) and lo == pytest.approx(4e-6) and hi == pytest.approx(40e-6)
