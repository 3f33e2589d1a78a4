"""The twin's compiled kernels against their numpy references, and the statistics of programming.

Two kinds of pin: (1) on the same inputs and draws, every kernel equals its pure-numpy reference
(:mod:`sim_backend.kernels`) to rounding; (2) on a fixed seed, the conductance steps the twin
makes through the kernels have the distribution an independent numpy implementation of the
documented physics gives (moments and a two-sample Kolmogorov-Smirnov distance, with tolerances
from the sample sizes), tight enough that a 10 % change of the variability or a change of the
nonlinearity fails them.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.types import ArraySpec, Pulse
from sim_backend import kernels, physics
from sim_backend.kernels import NormalStream
from sim_backend.twin import TwinBackend, sparse_outer_counts
from tests.helpers import make_twin

AREA = ArraySpec.area_from_diameter(1e-6)


def _records(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cells = np.zeros((n, kernels.N_FIELDS))
    cells[:, kernels.X] = rng.random(n)
    cells[:, kernels.T] = rng.random(n) * 5.0
    cells[:, kernels.LO] = 1e-6 * (1 + 0.1 * rng.random(n))
    cells[:, kernels.SPAN] = 1e-5 * (1 + 0.1 * rng.random(n))
    stuck = rng.random(n) < 0.05
    return cells, rng.random(n), stuck


@pytest.mark.parametrize("set_polarity", [True, False])
@pytest.mark.parametrize(("nu", "sigma", "has_t"), [(0.5, 0.34, True), (0.0, 0.0, False), (2.0, 1.5, True)])
def test_program_flat_equals_reference(set_polarity: bool, nu: float, sigma: float, has_t: bool) -> None:
    rng = np.random.default_rng(1)
    cells, cache, stuck = _records(500, rng)
    idx = np.sort(rng.choice(500, 200, replace=False))
    counts = rng.integers(0, 6, 200)
    z = rng.standard_normal(200)
    a, b, ca, cb = cells.copy(), cells.copy(), cache.copy(), cache.copy()
    args = (stuck, z, 7.0, 1e3, 0.8, set_polarity, sigma, nu, 50.0, has_t, True)
    gb_k, ga_k, frozen_k = kernels.program_flat(idx, counts, a, ca, *args)
    gb_r, ga_r, frozen_r = kernels.program_flat_reference(idx, counts, b, cb, *args)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ca, cb, rtol=1e-12, atol=0)
    assert np.array_equal(ca[idx], ga_k) and np.array_equal(np.delete(ca, idx), np.delete(cache, idx))
    np.testing.assert_allclose(gb_k, gb_r, rtol=1e-12)
    np.testing.assert_allclose(ga_k, ga_r, rtol=1e-12)
    assert frozen_k == frozen_r == int(np.sum(stuck[idx] | (counts == 0)))
    moved = ~(stuck[idx] | (counts == 0))
    assert np.array_equal(a[idx[~moved], kernels.X], cells[idx[~moved], kernels.X])  # frozen cells keep x
    # programmed cells carry the new time, frozen ones their old one
    if has_t:
        assert np.all(a[idx[moved], kernels.T] == 7.0)
        assert np.array_equal(a[idx[~moved], kernels.T], cells[idx[~moved], kernels.T])


@pytest.mark.parametrize("set_polarity", [True, False])
def test_program_all_equals_reference(set_polarity: bool) -> None:
    rng = np.random.default_rng(2)
    cells, cache, stuck = _records(1000, rng)
    cells[::2, kernels.T] = 4.0  # cells programmed together share a drift factor
    z = rng.standard_normal(1000)
    b, cb = cells.copy(), cache.copy()
    args = (stuck, 3, z, 9.0, 1e4, 0.6, set_polarity, 0.34, 0.5, 50.0, True)
    kernels.program_all_reference(b, cb, *args, np.zeros(0))
    # the nonlinear factors computed in the kernel, or beforehand by numpy: the same states
    for an in (np.zeros(0), kernels.step_factors(3, z, 0.6, 0.34, 0.5, 50.0)):
        a, ca = cells.copy(), cache.copy()
        kernels.program_all(a, ca, *args, an)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
        np.testing.assert_allclose(ca, cb, rtol=1e-12, atol=0)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 2**31 - 1),
    st.integers(1, 40),
    st.integers(1, 30),
    st.floats(0.0, 1.0),
    st.floats(0.05, 8.0),
)
def test_outer_counts_equal_the_dense_product(seed: int, rows: int, cols: int, density: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    r = rng.random(rows) * (rng.random(rows) < density)
    c = rng.random(cols) * scale
    idx, counts, total, largest = kernels.outer_counts(r, c, cols)
    ref_idx, ref_counts, ref_total, ref_largest = kernels.outer_counts_reference(r, c, cols)
    assert np.array_equal(idx, ref_idx) and np.array_equal(counts, ref_counts)
    assert (total, largest) == (ref_total, ref_largest)
    sp_idx, sp_counts = sparse_outer_counts(r, c, cols)
    assert np.array_equal(idx, sp_idx) and np.array_equal(counts, sp_counts)


@pytest.mark.parametrize("forward", [True, False])
@pytest.mark.parametrize("v0", [0.0, 1.0])
def test_vmm_vector_equals_reference(forward: bool, v0: float) -> None:
    rng = np.random.default_rng(3)
    combined = rng.standard_normal((40, 12)) * 1e-5
    noise_sq = (rng.random((40, 12)) * 1e-14).astype(np.float32)
    v = rng.random(40 if forward else 12) * 0.5 * (rng.random(40 if forward else 12) < 0.3)
    for sq in (noise_sq, np.zeros((0, 0), np.float32)):
        cur, var = kernels.vmm_vector(v, combined, sq, forward, 0.5, v0)
        ref_cur, ref_var = kernels.vmm_vector_reference(v, combined, sq, forward, 0.5, v0)
        np.testing.assert_allclose(cur, ref_cur, rtol=1e-12, atol=1e-25)
        np.testing.assert_allclose(var, ref_var, rtol=1e-6, atol=1e-30)
        z = rng.standard_normal(cur.size)
        noisy = kernels.vmm_noisy(v, combined, sq, forward, 0.5, v0, z)
        np.testing.assert_allclose(noisy, kernels.vmm_noisy_reference(v, combined, sq, forward, 0.5, v0, z),
                                   rtol=1e-6, atol=1e-25)  # fmt: skip
        assert (np.abs(noisy - cur).max() > 0) == (sq.size > 0)


@pytest.mark.parametrize("rel", [0.0, 0.002])
def test_read_cells_equals_reference(rel: float) -> None:
    rng = np.random.default_rng(7)
    g = rng.random(600)[::3]  # a strided view, as the twin passes a column
    z = rng.standard_normal(g.size)
    cur, cond = kernels.read_cells(g, 0.5, rel, z, 0.5)
    ref_cur, ref_cond = kernels.read_cells_reference(g, 0.5, rel, z, 0.5)
    np.testing.assert_allclose(cur, ref_cur, rtol=1e-15)
    np.testing.assert_allclose(cond, ref_cond, rtol=1e-15)
    assert (np.std(cond / g) > 0) == (rel > 0)


def test_apply_changes_equals_reference() -> None:
    rng = np.random.default_rng(4)
    combined = rng.random(300)
    noise_sq = rng.random(300).astype(np.float32)
    idx = np.sort(rng.choice(300, 50, replace=False))
    gb, ga = rng.random(50), rng.random(50)
    a, b = (combined.copy(), noise_sq.copy()), (combined.copy(), noise_sq.copy())
    kernels.apply_changes(a[0], a[1], idx, gb, ga, -1.0, 4e-6)
    kernels.apply_changes_reference(b[0], b[1], idx, gb, ga, -1.0, 4e-6)
    np.testing.assert_allclose(a[0], b[0], rtol=1e-14)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 3000), min_size=1, max_size=30))
def test_normal_stream_hands_out_the_generator_sequence(sizes: list[int]) -> None:
    stream = NormalStream(np.random.default_rng(5), block=1024)
    got = np.concatenate([stream.take(n) for n in sizes])
    assert np.array_equal(got, np.random.default_rng(5).standard_normal(sum(sizes)))


def test_the_twin_runs_the_same_on_the_reference_implementation() -> None:
    """The same operations on two twins of one seed, compiled and reference: the same states."""

    def drive(twin: TwinBackend) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(6)
        out = []
        for step in range(20):
            r = rng.random(30) * (rng.random(30) < 0.3)
            twin.program_outer("A", r, rng.random(20) * 3, Pulse(2.0, 100e-6))
            twin.program_cells("A", [(1, 2), (4, 5)], np.array([2, 1]), Pulse(2.0, 100e-6))
            if step % 5 == 0:
                twin.pulse("A", [(0, 0), (3, 3)], Pulse(-4.0, 100e-6), 5)
                twin.pulse("A", None, Pulse(2.0, 100e-6), 1)
            out.append(twin.vmm("A", rng.random(30) * 0.4 * (rng.random(30) < 0.5)))
        return np.concatenate([twin.model("A").cells.reshape(-1), twin.read("A").conductance_S.reshape(-1)]), np.array(out)

    spec = [ArraySpec("A", 30, 20, AREA)]
    cells_c, vmm_c = drive(make_twin(spec, seed=8, stuck_fraction=0.05))
    with kernels.use_reference():
        cells_r, vmm_r = drive(make_twin(spec, seed=8, stuck_fraction=0.05))
    np.testing.assert_allclose(cells_c, cells_r, rtol=1e-9, atol=0)
    np.testing.assert_allclose(vmm_c, vmm_r, rtol=1e-6, atol=1e-12)


# ------------------------------------------------------------------------------- statistics


def _ks_critical(n: int, m: int, alpha: float = 1e-6) -> float:
    """Two-sample KS distance exceeded with probability ``alpha`` under equal distributions."""
    return math.sqrt(-math.log(alpha / 2) / 2) * math.sqrt((n + m) / (n * m))


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def _reference_steps(
    x0: np.ndarray, counts: np.ndarray, s: float, sigma: float, nu: float, n_states: int, seed: int
) -> np.ndarray:
    """Normalised state changes by the documented physics, drawn with numpy from its own seed."""
    z = np.random.default_rng(seed).standard_normal(x0.shape)
    n = counts * s * (1.0 + sigma * z / np.sqrt(np.maximum(counts, 1)))
    return physics.potentiate(x0, n, nu, n_states) - x0


def _moments_agree(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal mean and variance within 5 standard errors of their difference."""
    se_mean = math.sqrt(a.var() / a.size + b.var() / b.size)
    se_var = math.sqrt(2.0 * a.var() ** 2 / (a.size - 1) + 2.0 * b.var() ** 2 / (b.size - 1))
    return abs(a.mean() - b.mean()) < 5 * se_mean and abs(a.var() - b.var()) < 5 * se_var


def test_programming_steps_have_the_documented_distribution() -> None:
    """Conductance steps of 40,000 fresh cells given 1-3 pulses through the twin's kernels, against
    an independent numpy draw of the closed-form physics: for each pulse count, equal mean and
    variance within 5 standard errors and a KS distance below its 1e-6 critical value. The pin
    can fail: a 10 % larger variability or a 20 % stronger nonlinearity is told apart."""
    rows, cols = 200, 200
    twin = make_twin([ArraySpec("A", rows, cols, AREA)], seed=11, stuck_fraction=0.0, retention_tau_s=None)
    model = twin.model("A")
    p = model.preset
    counts = np.random.default_rng(12).integers(1, 4, (rows, cols))
    x0 = model.x.copy()
    twin.program("A", counts, Pulse(2.0, 100e-6))
    dx = (model.x - x0).reshape(-1)
    k = counts.reshape(-1)
    polarity, s = physics.step_strength(p, 2.0, 100e-6)
    assert polarity == "set"
    sigma, nu = p.c2c_sigma_over_mu, p.nonlinearity_potentiation
    start = x0.reshape(-1)
    ref = _reference_steps(start, k, s, sigma, nu, p.n_states, seed=99)
    wider = _reference_steps(start, k, s, 1.1 * sigma, nu, p.n_states, seed=98)
    other_nu = _reference_steps(start, k, s, sigma, 1.2 * nu, p.n_states, seed=97)
    for m in (1, 2, 3):
        a = dx[k == m]
        assert _moments_agree(a, ref[k == m]), m
        assert _ks(a, ref[k == m]) < _ks_critical(a.size, int(np.sum(k == m))), m
        assert not _moments_agree(a, wider[k == m]), m
        assert not _moments_agree(a, other_nu[k == m]), m


def test_strong_reset_drives_devices_to_gmin() -> None:
    """A strong reset (5 pulses of -4 V) through the kernels leaves every formed device at its
    lower bound, as the general path's closed form does (a device pushed against a bound stays)."""
    twin = make_twin([ArraySpec("A", 50, 40, AREA)], seed=13)
    twin.program("A", np.full((50, 40), 30), Pulse(2.0, 100e-6))
    cells = np.argwhere(np.ones((50, 40), dtype=bool))[::3]
    twin.pulse("A", cells, Pulse(-4.0, 100e-6), 5)
    model = twin.model("A")
    x = model.x.reshape(-1)[cells[:, 0] * 40 + cells[:, 1]]
    stuck = model.stuck.reshape(-1)[cells[:, 0] * 40 + cells[:, 1]]
    assert np.all(x[~stuck] < 1e-3)


def test_an_interrupt_landing_in_a_compiled_call_is_raised_as_itself():
    """numba reports an exception raised by a signal handler during its dispatch as a SystemError
    chained to it; the twin's kernels raise the interrupt itself (the run ends interrupted)."""
    from hil.engine import RunInterrupted
    from sim_backend.kernels import interruptible

    def landed(exc: BaseException):
        def kernel(*args: object) -> None:
            try:
                raise exc
            except BaseException as inner:
                raise SystemError("returned a result with an exception set") from inner

        return interruptible(kernel)

    with pytest.raises(RunInterrupted, match="aborted"):
        landed(RunInterrupted("aborted"))()
    with pytest.raises(KeyboardInterrupt):
        landed(KeyboardInterrupt())()
    def chained(*args: object) -> None:  # numba's own callback fails first: SystemError of a SystemError
        try:
            try:
                raise RunInterrupted("deep")
            except BaseException as inner:
                raise SystemError("_numba_unpickle returned a result with an exception set") from inner
        except SystemError as callback:
            raise SystemError("CPUDispatcher returned a result with an exception set") from callback

    with pytest.raises(RunInterrupted, match="deep"):
        interruptible(chained)()
    with pytest.raises(SystemError):  # a real error of the kernel stays what it is
        landed(ValueError("bad"))()
    assert interruptible(lambda a, b: a + b)(2, 3) == 5
