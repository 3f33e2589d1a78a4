"""Numerical fits used by extraction and preset fitting (numpy only, vectorised, deterministic).

Pulse-response model. A device's normalised state after ``m`` identical pulses from a bound is
``phi(m) = min(1, (1 - exp(-nu m / n)) / (1 - exp(-nu)))`` (``min(1, m / n)`` for ``nu = 0``):
``n`` pulses take it across the whole range (the number of states) and ``nu`` bends the curve (the
nonlinearity; larger steps first). A measured branch is ``G_m = a + b * phi(m)``: potentiation has
``a = Gmin``, ``b = Gmax - Gmin``; depression ``a = Gmax``, ``b = -(Gmax - Gmin)``.

Cycle-to-cycle variability makes each cycle a random walk clipped at the bound, which rounds the
corner of the mean curve; the rounding is nearly symmetric about the corner, so fitting the sharp
model to the mean curve recovers ``n`` and ``nu`` (tests/test_extract.py checks this on the twin).

``(nu, n)`` are found by a grid search refined three times around the best point; for each
candidate the linear parameters ``(a, b)`` are solved in closed form (variable projection).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NU_MAX = 12.0


def phi_unclipped(m: np.ndarray, nu: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """``(1 - exp(-nu m / n)) / (1 - exp(-nu))`` (``m / n`` at ``nu = 0``), broadcasting."""
    m = np.asarray(m, dtype=float)
    nu = np.asarray(nu, dtype=float)
    n = np.asarray(n, dtype=float)
    small = np.abs(nu) < 1e-9
    safe = np.where(small, 1.0, nu)
    curved = -np.expm1(-safe * m / n) / -np.expm1(-safe)
    return np.where(small, m / n, curved)


def phi(m: np.ndarray, nu: np.ndarray | float, n: np.ndarray | float) -> np.ndarray:
    """Normalised state after ``m`` pulses from a bound, clipped at the other bound.

    ``m`` runs along the last axis; ``nu`` and ``n`` broadcast against it (give them shape
    ``(K, 1)`` to evaluate ``K`` candidates at once).
    """
    return np.minimum(phi_unclipped(m, nu, n), 1.0)


@dataclass(frozen=True)
class BranchFit:
    """Result of fitting ``G_m = a + b * phi(m; nu, n)`` to a branch (S, pulses, dimensionless)."""

    a: float
    b: float
    nu: float
    n: float
    rms_S: float
    saturated: bool

    @property
    def g_start_S(self) -> float:
        """Conductance at the bound the branch starts from (S)."""
        return self.a

    @property
    def g_end_S(self) -> float:
        """Conductance at the bound the branch runs into (S)."""
        return self.a + self.b


def _linear(y: np.ndarray, basis: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of ``y`` on ``[1, basis_k]`` for every row ``k``: ``(a, b, sse)``."""
    sw = w.sum()
    my = (w * y).sum() / sw
    mb = (basis * w).sum(axis=-1) / sw
    db = basis - mb[:, None]
    dy = y - my
    var_b = (w * db * db).sum(axis=-1)
    cov = (w * db * dy).sum(axis=-1)
    b = np.where(var_b > 0, cov / np.where(var_b > 0, var_b, 1.0), 0.0)
    a = my - b * mb
    sse = (w * dy * dy).sum() - b * cov
    return a, b, sse


def fit_branch(
    g: np.ndarray, weights: np.ndarray | None = None, n_max: float | None = None, corner_window: float = 0.15
) -> BranchFit:
    """Fit one branch (``g[m-1]`` read after pulse ``m``; NaN ignored) with :func:`phi`.

    Cycle-to-cycle variability rounds the corner of a mean curve where it meets its bound; when the
    branch saturates, the fit is repeated twice without the pulses within ``corner_window * n`` of
    the corner, so the rounding biases neither the bounds nor ``n`` (``corner_window=0``: off).

    A coarse grid over ``(nu, n)`` is refined by zooming around two starts, the best candidate
    overall and the best linear one (``nu = 0``, whose basin is narrow); the better result wins.
    ``saturated`` tells whether the fitted corner lies inside the measured pulses (only then are
    ``n`` and the bound ``a + b`` measured rather than extrapolated).
    """
    y_all = np.asarray(g, dtype=float)
    w_all = np.ones_like(y_all) if weights is None else np.asarray(weights, dtype=float)
    fit = _fit_branch_once(y_all, w_all, n_max)
    for _ in range(2 if corner_window > 0 else 0):
        if not fit.saturated:
            break
        m = np.arange(1, y_all.size + 1)
        near = np.abs(m - fit.n) <= corner_window * fit.n
        if (~near & np.isfinite(y_all)).sum() < 6 or (m > fit.n * (1 + corner_window)).sum() < 2:
            break
        fit = _fit_branch_once(y_all, np.where(near, 0.0, w_all), n_max, start=(fit.nu, fit.n))
    return fit


def _fit_branch_once(
    y_all: np.ndarray, w_all: np.ndarray, n_max: float | None, start: tuple[float, float] | None = None
) -> BranchFit:
    """One variable-projection fit; ``start=(nu, n)`` searches only near it (no coarse grid)."""
    m_all = np.arange(1, y_all.size + 1, dtype=float)
    ok = np.isfinite(y_all) & (w_all > 0)
    if ok.sum() < 4:
        nan = float("nan")
        return BranchFit(nan, nan, nan, nan, nan, False)
    y, w = y_all[ok], w_all[ok]
    p = float(m_all[-1])
    n_hi = float(n_max) if n_max is not None else 4.0 * p

    def evaluate(nus: np.ndarray, ns: np.ndarray) -> tuple[np.ndarray, ...]:
        nu_grid, n_grid = np.meshgrid(nus, ns, indexing="ij")
        nu_c, n_c = nu_grid.reshape(-1, 1), n_grid.reshape(-1, 1)
        a, b, sse = _linear(y, phi(m_all[None, :], nu_c, n_c)[:, ok], w)
        return a, b, sse, nu_c[:, 0], n_c[:, 0]

    def refine(
        nus: np.ndarray, ns: np.ndarray, best: tuple[float, float, float, float, float]
    ) -> tuple[float, float, float, float, float]:
        for _round in range(8):
            # zoom: a finer grid spanning two grid spacings either side of the best point
            i_nu, i_n = int(np.searchsorted(nus, best[2])), int(np.searchsorted(ns, best[3]))
            nus = np.linspace(nus[max(i_nu - 2, 0)], nus[min(i_nu + 2, nus.size - 1)], 17)
            ns = np.geomspace(ns[max(i_n - 2, 0)], ns[min(i_n + 2, ns.size - 1)], 17)
            a, b, sse, nu_c, n_c = evaluate(nus, ns)
            j = int(np.argmin(sse))
            if sse[j] <= best[4]:
                best = (float(a[j]), float(b[j]), float(nu_c[j]), float(n_c[j]), float(sse[j]))
        return best

    if start is None:
        nus0 = np.concatenate([[0.0], np.geomspace(0.01, NU_MAX, 60)])
        ns0 = np.geomspace(1.5, n_hi, 240)
    else:
        nus0 = np.unique(np.concatenate([[0.0], np.linspace(max(0.0, start[0] - 0.3), start[0] + 0.3, 16)]))
        ns0 = np.geomspace(max(1.5, start[1] / 1.15), min(n_hi, start[1] * 1.15), 24)
    grid = evaluate(nus0, ns0)
    sse0 = grid[2]

    def candidate(k: int) -> tuple[float, float, float, float, float]:
        a, b, sse, nu_c, n_c = grid
        return float(a[k]), float(b[k]), float(nu_c[k]), float(n_c[k]), float(sse[k])

    overall = int(np.argmin(sse0))
    linear = int(np.argmin(sse0[: ns0.size]))  # nu = 0 is the first row of the grid
    candidates = [refine(nus0, ns0, candidate(overall))]
    if linear != overall:
        candidates.append(refine(nus0, ns0, candidate(linear)))
    a_b, b_b, nu_b, n_b, sse_b = min(candidates, key=lambda c: c[4])
    rms = math.sqrt(max(sse_b, 0.0) / w.sum())
    return BranchFit(a_b, b_b, nu_b, n_b, rms, saturated=bool(n_b < p - 1))


def fit_exponential_decay(
    t: np.ndarray, y: np.ndarray, offset: float | None = None
) -> tuple[float, float, float]:
    """Fit ``y = c + A exp(-t / tau)``: returns ``(c, A, tau)`` (tau in the units of ``t``).

    With ``offset`` given, ``c`` is fixed to it (a decay towards a known level). ``tau`` is searched
    on a log grid from a tenth of the smallest positive time to a thousand times the largest,
    refined three times; the linear parameters are solved in closed form for each candidate.
    """
    t = np.asarray(t, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = np.isfinite(t) & np.isfinite(y)
    t, y = t[ok], y[ok]
    pos = t[t > 0]
    if y.size < 3 or pos.size < 2:
        nan = float("nan")
        return nan, nan, nan
    lo, hi = math.log(pos.min() / 10), math.log(pos.max() * 1000)
    w = np.ones_like(y)
    best = (float("nan"), float("nan"), float("nan"))
    for _round in range(4):
        taus = np.exp(np.linspace(lo, hi, 81))
        basis = np.exp(-t[None, :] / taus[:, None])
        if offset is None:
            a, b, sse = _linear(y, basis, w)
        else:
            yo = y - offset
            bb = (basis * basis).sum(axis=-1)
            b = (basis * yo).sum(axis=-1) / bb
            sse = ((yo - b[:, None] * basis) ** 2).sum(axis=-1)
            a = np.full_like(b, offset)
        k = int(np.argmin(sse))
        best = (float(a[k]), float(b[k]), float(taus[k]))
        span = (hi - lo) / 10
        lo, hi = math.log(taus[k]) - span, math.log(taus[k]) + span
    return best


def loglog_slope(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept of ``log10 y`` against ``log10 x`` (positive values only)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    slope, intercept = np.polyfit(np.log10(x[ok]), np.log10(y[ok]), 1)
    return float(slope), float(intercept)
