"""The direct twin backend against closed-form and statistical expectations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.backend import coincidence_counts, outer_counts
from hil.types import ArraySpec, Pulse
from tests.helpers import IDEAL, REF_AREA_M2

SET = Pulse(2.0, 100e-6)
RESET = Pulse(-4.0, 100e-6)


def test_n_states_identical_pulses_span_gmin_to_gmax(make_twin, preset) -> None:
    twin = make_twin(**IDEAL)
    g0 = twin.read("A").conductance_S
    assert g0 == pytest.approx(np.full((8, 8), preset.g_min_S))
    train = twin.pulse("A", [(0, 0)], SET, count=preset.n_states, read_after=True)
    g = train.conductance_S[0]
    step = (preset.g_max_S - preset.g_min_S) / preset.n_states
    # linear: exactly one step per pulse, Gmax after the 50th
    assert g == pytest.approx(preset.g_min_S + step * np.arange(1, 51), rel=1e-12)
    assert g[-1] == pytest.approx(preset.g_max_S)
    # a further pulse changes nothing: the states are finite
    more = twin.pulse("A", [(0, 0)], SET, count=1, read_after=True).conductance_S[0, 0]
    assert more == pytest.approx(preset.g_max_S)


def test_reads_below_threshold_do_not_disturb(make_twin) -> None:
    twin = make_twin(**IDEAL)
    twin.pulse("A", None, SET, count=20)
    before = twin.read("A").conductance_S
    for _ in range(50):
        twin.read("A", voltage_V=0.9)
    assert twin.read("A").conductance_S == pytest.approx(before, rel=0, abs=0)


def test_area_scaling_range_and_step(make_twin, preset) -> None:
    """Interfacial switching: Gmin, Gmax and the step per pulse are proportional to area."""
    diam = [30e-9, 100e-9, 316e-9, 1e-6]
    arrays = [ArraySpec(f"d{i}", 2, 2, ArraySpec.area_from_diameter(d)) for i, d in enumerate(diam)]
    twin = make_twin(arrays, **IDEAL)
    for spec in arrays:
        g = twin.pulse(spec.name, [(0, 0)], SET, count=preset.n_states, read_after=True).conductance_S[0]
        scale = spec.device_area_m2 / REF_AREA_M2
        assert g[-1] == pytest.approx(preset.g_max_S * scale)
        assert g[1] - g[0] == pytest.approx((preset.g_max_S - preset.g_min_S) / preset.n_states * scale)
        lo = twin.read(spec.name, [(1, 1)]).conductance_S[0]
        assert lo == pytest.approx(preset.g_min_S * scale)


def test_strong_reset_returns_near_gmin_with_variability(make_twin, preset) -> None:
    twin = make_twin(arrays=[ArraySpec("A", 32, 32, REF_AREA_M2)], d2d_sigma=0.0, read_noise_rel=0.0)
    for _ in range(3):
        twin.pulse("A", None, SET, count=60)
        twin.pulse("A", None, RESET, count=5)
        g = twin.read("A").conductance_S
        ok = ~twin.model("A").stuck
        assert np.all(g[ok] < preset.g_min_S * 1.001)


def test_cycle_to_cycle_sigma_over_mu(make_twin, preset) -> None:
    """Single-pulse steps in the linear regime have sigma/mu equal to the preset's 0.34."""
    twin = make_twin(arrays=[ArraySpec("A", 200, 200, REF_AREA_M2)], **{**IDEAL, "c2c_sigma_over_mu": 0.34})
    twin.pulse("A", None, SET, count=10)  # away from the Gmin bound
    g0 = twin.read("A").conductance_S
    twin.pulse("A", None, SET, count=1)
    dg = (twin.read("A").conductance_S - g0).ravel()
    mu = (preset.g_max_S - preset.g_min_S) / preset.n_states
    assert dg.mean() == pytest.approx(mu, rel=0.01)
    assert dg.std() / dg.mean() == pytest.approx(0.34, rel=0.03)
    # n pulses at once: the variance of the sum is n times one pulse's
    g1 = twin.read("A").conductance_S
    twin.pulse("A", None, SET, count=9)
    dg9 = (twin.read("A").conductance_S - g1).ravel()
    assert dg9.std() / dg9.mean() == pytest.approx(0.34 / 3, rel=0.05)


def test_device_to_device_and_stuck_cells(make_twin, preset) -> None:
    twin = make_twin(
        arrays=[ArraySpec("A", 300, 300, REF_AREA_M2)],
        **{**IDEAL, "d2d_sigma": 0.2, "stuck_fraction": 0.01, "stuck_on_fraction": 0.5},
    )
    model = twin.model("A")
    rel = model.g_lo[~model.stuck] / preset.g_min_S
    assert rel.mean() == pytest.approx(1.0, abs=0.01)
    assert rel.std() == pytest.approx(0.2, rel=0.03)
    n = model.stuck.sum()
    assert abs(n - 900) < 5 * math.sqrt(900)  # binomial, 5 sigma
    twin.pulse("A", None, RESET, count=5)
    g = twin.read("A").conductance_S
    stuck_on = model.stuck & (model.stuck_x == 1.0)
    assert np.all(g[stuck_on] == pytest.approx((model.g_lo + model.g_span)[stuck_on]))
    assert abs(stuck_on.sum() - n / 2) < 5 * math.sqrt(n / 4)


def test_seeded_runs_are_bit_identical_and_reads_do_not_shift_programming(make_twin) -> None:
    def trajectory(seed: int, extra_reads: int) -> np.ndarray:
        twin = make_twin(seed=seed, retention_tau_s=None)  # reads take time; drift would differ
        out = []
        for _ in range(5):
            out.append(twin.pulse("A", None, SET, count=3, read_after=True).conductance_S)
            for _ in range(extra_reads):
                twin.read("A")
        twin_state = twin.model("A").x.copy()
        return np.concatenate([np.ravel(o) for o in out]), twin_state

    a, xa = trajectory(7, 0)
    b, xb = trajectory(7, 0)
    assert np.array_equal(a, b) and np.array_equal(xa, xb)
    c, _ = trajectory(8, 0)
    assert not np.array_equal(a, c)
    # extra reads draw only from the read-noise stream: device states are identical
    _, xd = trajectory(7, 4)
    assert np.array_equal(xa, xd)


def test_program_outer_equals_program_of_rounded_outer(make_twin) -> None:
    rng = np.random.default_rng(1)
    r = np.where(rng.random(8) < 0.5, 0.0, rng.random(8) * 3)
    c = np.where(rng.random(8) < 0.3, 0.0, rng.random(8) * 2)
    a = make_twin(seed=3)
    b = make_twin(seed=3)
    res_a = a.program("A", outer_counts(r, c), SET)
    res_b = b.program_outer("A", r, c, SET)
    assert np.array_equal(a.model("A").x, b.model("A").x)
    assert res_a.pulses_applied == res_b.pulses_applied == outer_counts(r, c).sum()
    assert res_a.max_count == res_b.max_count == outer_counts(r, c).max()


def test_program_cells_equals_program_of_the_count_matrix(make_twin) -> None:
    cells = np.array([[5, 1], [0, 3], [2, 2], [7, 7], [0, 0]])  # any order; a zero count skipped
    counts = np.array([4, 1, 0, 9, 2])
    matrix = np.zeros((8, 8), dtype=np.int64)
    matrix[cells[:, 0], cells[:, 1]] = counts
    a = make_twin(seed=3)
    b = make_twin(seed=3)
    res_a = a.program("A", matrix, SET)
    res_b = b.program_cells("A", cells, counts, SET)
    assert np.array_equal(a.model("A").x, b.model("A").x)  # same physics, same random draws
    assert (res_a.pulses_applied, res_a.cells_programmed, res_a.max_count) == (16, 4, 9)
    assert (res_b.pulses_applied, res_b.cells_programmed, res_b.max_count) == (16, 4, 9)
    assert a.now() == b.now()


def test_program_counts_match_closed_form(make_twin, preset) -> None:
    twin = make_twin(**IDEAL)
    counts = np.arange(64).reshape(8, 8) % 7
    twin.program("A", counts, SET)
    step = (preset.g_max_S - preset.g_min_S) / preset.n_states
    assert twin.read("A").conductance_S == pytest.approx(preset.g_min_S + counts * step)


def test_vmm_forward_backward_and_differential(make_twin) -> None:
    arrays = [ArraySpec("P", 6, 4, REF_AREA_M2), ArraySpec("M", 6, 4, REF_AREA_M2)]
    twin = make_twin(arrays, **IDEAL)
    twin.program("P", np.arange(24).reshape(6, 4) % 5, SET)
    twin.program("M", np.arange(24).reshape(6, 4) % 3, SET)
    gp = twin.read("P").conductance_S
    gm = twin.read("M").conductance_S
    v = np.linspace(0.0, 0.4, 6)
    assert twin.vmm("P", v) == pytest.approx(v @ gp)
    u = np.array([0.1, -0.2, 0.3, 0.05])
    assert twin.vmm("P", u, direction="backward") == pytest.approx(u @ gp.T)
    assert twin.vmm(["P", "M"], v, signs=[1, -1]) == pytest.approx(v @ (gp - gm))
    batch = np.stack([v, v / 2])
    assert twin.vmm("P", batch) == pytest.approx(batch @ gp)


def test_vmm_with_nonlinear_iv(make_twin) -> None:
    twin = make_twin(**{**IDEAL, "iv_v0_V": 1.0})
    g = twin.read("A").conductance_S
    v = np.full(8, 0.25)
    f = 0.5 * np.sinh(0.25) / math.sinh(0.5)
    assert twin.vmm("A", v) == pytest.approx(np.full(8, f) @ g)


def test_iv_sweep_compliance_and_current_density(make_twin) -> None:
    arrays = [ArraySpec("big", 1, 1, REF_AREA_M2), ArraySpec("small", 1, 1, REF_AREA_M2 / 100)]
    twin = make_twin(arrays, **{**IDEAL, "iv_v0_V": 1.0})
    v = np.round(np.arange(0, 101) * 0.03, 9)
    assert len(v) == 101 and v[-1] == pytest.approx(3.0)
    big = twin.iv_sweep("big", 0, 0, v, compliance_A=1.0)
    small = twin.iv_sweep("small", 0, 0, v, compliance_A=1.0)
    # same current density at every point: I scales with area
    nz = v > 0
    assert small.current_A[nz] / big.current_A[nz] == pytest.approx(np.full(nz.sum(), 0.01), rel=1e-9)
    # the sweep potentiates gradually above the 1 V threshold
    assert twin.read("big").conductance_S[0, 0] > big.current_A[1] / v[1]
    # compliance is honoured at every point
    twin2 = make_twin([ArraySpec("big", 1, 1, REF_AREA_M2)], **{**IDEAL, "iv_v0_V": 1.0})
    capped = twin2.iv_sweep("big", 0, 0, v, compliance_A=50e-6)
    assert np.all(np.abs(capped.current_A) <= 50e-6 * (1 + 1e-12))
    assert capped.in_compliance.any()
    assert np.all(capped.voltage_V[capped.in_compliance] < v[capped.in_compliance])
    # and it limits switching: the capped device ends lower than the free one
    assert twin2.read("big").conductance_S[0, 0] < twin.read("big").conductance_S[0, 0]


def test_retention_drift_time_constant(make_twin, preset) -> None:
    twin = make_twin(**{**IDEAL, "retention_tau_s": 1e6})
    twin.pulse("A", [(0, 0)], SET, count=50)
    g_hi = twin.read("A", [(0, 0)]).conductance_S[0]
    twin.delay(1e6)
    g_later = twin.read("A", [(0, 0)]).conductance_S[0]
    assert (g_later - preset.g_min_S) == pytest.approx((g_hi - preset.g_min_S) / math.e, rel=1e-3)
    # programming restarts the clock from the drifted state
    twin.pulse("A", [(0, 0)], SET, count=1)
    g_new = twin.read("A", [(0, 0)]).conductance_S[0]
    step = (preset.g_max_S - preset.g_min_S) / preset.n_states
    assert g_new == pytest.approx(g_later + step, rel=1e-3)


def test_forming_required_devices(make_twin, preset) -> None:
    twin = make_twin(**{**IDEAL, "forming_free": False, "forming_voltage_V": 3.0})
    g = twin.read("A", [(0, 0)]).conductance_S[0]
    assert g == pytest.approx(preset.pristine_conductance_ratio * preset.g_min_S)
    twin.pulse("A", [(0, 0)], SET, count=10)  # below the forming voltage: nothing
    assert twin.read("A", [(0, 0)]).conductance_S[0] == pytest.approx(g)
    twin.pulse("A", [(0, 0)], Pulse(3.2, 1e-6), count=1)
    assert twin.read("A", [(0, 0)]).conductance_S[0] >= preset.g_min_S


def test_large_array_is_vectorised(make_twin) -> None:
    """A 1024 x 1024 array programs and reads as whole arrays (no per-cell Python)."""
    twin = make_twin(arrays=[ArraySpec("big", 1024, 1024, REF_AREA_M2)])
    res = twin.pulse("big", None, SET, count=5)
    assert res.cells.shape == (1024 * 1024, 2)
    g = twin.read("big").conductance_S
    assert g.shape == (1024, 1024) and np.isfinite(g).all()


def test_unknown_array_and_bad_cells(make_twin) -> None:
    twin = make_twin()
    with pytest.raises(ValueError, match="'Z' is not in this station"):
        twin.read("Z")
    with pytest.raises(ValueError, match=r"\(9, 0\) is outside array 'A'"):
        twin.read("A", [(9, 0)])


def test_program_streams_equals_program_of_the_coincidence_counts(make_twin) -> None:
    rng = np.random.default_rng(5)
    rows = rng.random((8, 12)) < 0.4
    cols = rng.random((8, 12)) < 0.3
    rows[2] = False  # a silent row and column are skipped
    cols[6] = False
    counts = (rows[:, None, :] & cols[None, :, :]).sum(axis=2)  # slot by slot, no matrix product
    assert np.array_equal(coincidence_counts(rows, cols), counts)
    a = make_twin(seed=3)
    b = make_twin(seed=3)
    res_a = a.program("A", counts, SET)
    res_b = b.program_streams("A", rows, cols, SET)
    assert np.array_equal(a.model("A").x, b.model("A").x)  # same physics, same draws
    assert res_a.pulses_applied == res_b.pulses_applied == counts.sum()
    assert res_b.cells_programmed == np.count_nonzero(counts) and res_b.max_count == counts.max()
    # the update lasts its 12 slots, however few coincide
    assert res_b.duration_s == pytest.approx(12 * (SET.width_s + b.timing.pulse_gap_s))
    assert b.now() == pytest.approx(res_b.duration_s)
    # streams that never coincide program nothing
    none = b.program_streams("A", rows & False, cols, SET)
    assert none.pulses_applied == 0 and none.cells_programmed == 0
