"""Compiled kernels of the twin's hot paths, each next to the pure-numpy reference it must equal.

In-situ training programs a few hundred cells per image, in four programming calls, and reads
the arrays through three VMMs; at that size numpy's per-call overhead, not arithmetic, sets the
pace. The kernels here do one call's work in one pass (numba, compiled once and cached on disk):

- :func:`outer_counts`: the cells and pulse counts of an outer-product update,
  ``rint(r_i c_j)``, row-major, without the outer product (reference:
  :func:`sim_backend.twin.sparse_outer_counts`);
- :func:`program_flat`: programming of a list of cells of a formed array: retention drift to
  now, cycle-to-cycle variability, the closed-form potentiation or depression, the stored state
  and the cached conductances (reference: :func:`program_flat_reference`);
- :func:`program_all`: the same for every cell of an array at once, with the nonlinear step
  factors computed beforehand by numpy's vectorised exponential (:func:`step_factors`);
- :func:`apply_changes`: a fused read-out's signed conductance sum (and read-noise variance)
  brought up to date by one programming change;
- :func:`vmm_vector` / :func:`vmm_noisy`: a differential read-out of one drive vector, only its
  non-zero lines, without or with its read noise (reference: :func:`vmm_vector_reference`);
- :func:`read_cells`: read currents with read noise, and the conductances they give.

Every kernel has a numpy reference beside it (``*_reference``); :func:`use_reference` runs the
twin on them (the tests compare the two, kernel by kernel and over a training run).

The random draws are not made here: callers pass the Gaussian draws (one per cell, one per
sensed line) taken from the array's own streams, so the kernels and the references consume the
same numbers and give the same results to rounding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from sim_backend import physics

# ---------------------------------------------------------------------------------------- counts


@njit(cache=True, nogil=True)
def outer_counts(r: np.ndarray, c: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Flat row-major indices and counts of the non-zero entries of ``rint(outer(r, c))``, and
    the counts' sum and largest value.

    ``r`` and ``c`` are non-negative. Columns that can receive a pulse are sorted by ``c``
    (descending) once; each row then walks them until ``r_i c_j`` falls below one half, so the
    work is the rows plus the cells programmed. A row's cells are put back in column order.
    """
    r_max = 0.0
    for i in range(r.size):
        if r[i] > r_max:
            r_max = r[i]
    c_max = 0.0
    for j in range(c.size):
        if c[j] > c_max:
            c_max = c[j]
    if not (r_max > 0.0 and c_max > 0.0):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), 0, 0
    margin = 1.0 - 1e-9  # generous candidate bounds; exact counts decide
    n_cand = 0
    cand = np.empty(c.size, np.int64)
    for j in range(c.size):
        if c[j] * r_max > 0.5 * margin:
            cand[n_cand] = j
            n_cand += 1
    cand = cand[:n_cand]
    order = np.argsort(-c[cand], kind="mergesort")
    cols = cand[order]
    c_desc = c[cols]
    cap = 1024
    idx = np.empty(cap, np.int64)
    cnt = np.empty(cap, np.int64)
    n = 0
    total = 0
    largest = 0
    for i in range(r.size):
        ri = r[i]
        if not ri * c_max > 0.5 * margin:
            continue
        start = n
        for k in range(n_cand):
            v = np.rint(ri * c_desc[k])
            if v <= 0.0:
                if ri * c_desc[k] < 0.5 * margin:
                    break
                continue
            if n == cap:
                cap *= 2
                idx2 = np.empty(cap, np.int64)
                cnt2 = np.empty(cap, np.int64)
                idx2[:n] = idx[:n]
                cnt2[:n] = cnt[:n]
                idx, cnt = idx2, cnt2
            # insertion into the row's run, kept in column order
            col = cols[k]
            p = n
            while p > start and idx[p - 1] > i * n_cols + col:
                idx[p] = idx[p - 1]
                cnt[p] = cnt[p - 1]
                p -= 1
            idx[p] = i * n_cols + col
            cv = int(v)
            cnt[p] = cv
            total += cv
            largest = max(largest, cv)
            n += 1
    return idx[:n].copy(), cnt[:n].copy(), total, largest


# ---------------------------------------------------------------------------------- programming

#: The fields of a cell record of :attr:`sim_backend.array_model.TwinArray.cells`, in order:
#: normalised state at the last programming, time of the last programming (s), Gmin (S),
#: Gmax - Gmin (S): 32 bytes, so a record never straddles two cache lines.
CELL_FIELDS = ("x", "t_prog", "g_lo", "g_span")
X, T, LO, SPAN = range(len(CELL_FIELDS))
N_FIELDS = len(CELL_FIELDS)


@njit(cache=True, nogil=True)
def program_flat(
    idx: np.ndarray,
    counts: np.ndarray,
    cells: np.ndarray,
    cache: np.ndarray,
    stuck: np.ndarray,
    z: np.ndarray,
    t: float,
    tau: float,
    s: float,
    set_polarity: bool,
    sigma: float,
    nu: float,
    n_states: float,
    has_t: bool,
    has_cache: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Program the cells ``idx`` (flat) of a formed array with ``counts`` pulses of ``s`` steps.

    In place on the cell records ``cells`` (``(n, N_FIELDS)``, fields :data:`CELL_FIELDS`):
    the state and the time of last programming (``has_t``: the preset has retention drift);
    and on ``cache`` (flat cached conductances, S) when ``has_cache``. ``z`` holds one Gaussian draw per cell (read only when
    ``sigma > 0``). Returns each cell's conductance before and after (S, at ``t``) and how many
    cells were frozen (stuck, or no pulse). The arithmetic of :func:`program_flat_reference`.
    """
    m_cells = idx.size
    g_before = np.empty(m_cells)
    g_after = np.empty(m_cells)
    denom = -math.expm1(-nu) if nu != 0.0 else 1.0
    frozen_n = 0
    for k in range(m_cells):
        i = idx[k]
        m = counts[k]
        rec = cells[i]
        xs = rec[X]
        lo = rec[LO]
        span = rec[SPAN]
        if stuck[i] or m == 0:
            # frozen: stuck cells keep their stored state, others drift
            x0 = xs if stuck[i] or not has_t else xs * math.exp(-(t - rec[T]) / tau)
            g = lo + x0 * span
            g_before[k] = g
            g_after[k] = g
            if has_cache:
                cache[i] = g
            frozen_n += 1
            continue
        x0 = xs * math.exp(-(t - rec[T]) / tau) if has_t else xs
        g_before[k] = lo + x0 * span
        n = m * s
        if sigma > 0.0:
            n = n * (1.0 + sigma * z[k] / math.sqrt(max(float(m), 1.0)))
        xi = x0 if set_polarity else 1.0 - x0
        if nu == 0.0:
            out = xi + n / n_states
        else:
            an = math.exp(-nu * n / n_states)
            out = an * xi + (1.0 - an) / denom
        out = min(max(out, 0.0), 1.0)
        xn = out if set_polarity else 1.0 - out
        rec[X] = xn
        if has_t:
            rec[T] = t
        g = lo + xn * span
        g_after[k] = g
        if has_cache:
            cache[i] = g
    return g_before, g_after, frozen_n


def program_flat_reference(
    idx: np.ndarray,
    counts: np.ndarray,
    cells: np.ndarray,
    cache: np.ndarray,
    stuck: np.ndarray,
    z: np.ndarray,
    t: float,
    tau: float,
    s: float,
    set_polarity: bool,
    sigma: float,
    nu: float,
    n_states: float,
    has_t: bool,
    has_cache: bool,
) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`program_flat` in plain numpy, through :mod:`sim_backend.physics` (the reference)."""
    rec = cells[idx]
    x_stored = rec[:, X]
    st = stuck[idx]
    m = counts.astype(float)
    frozen = st | (counts == 0)
    x0 = x_stored
    if has_t:
        x0 = np.where(st, x_stored, physics.retention_decay(x_stored, t - rec[:, T], tau))
    n = m * s
    if sigma > 0:
        n = n * (1.0 + sigma * z / np.sqrt(np.maximum(m, 1.0)))
    if set_polarity:
        x_new = physics.potentiate(x0, n, nu, int(n_states))
    else:
        x_new = physics.depress(x0, n, nu, int(n_states))
    lo, span = rec[:, LO], rec[:, SPAN]
    g_before = lo + x0 * span
    g_after = lo + np.where(frozen, x0, x_new) * span
    live = idx[~frozen]
    cells[live, X] = x_new[~frozen]
    if has_t:
        cells[live, T] = t
    if has_cache:
        cache[idx] = g_after
    return g_before, g_after, int(frozen.sum())


@njit(cache=True, nogil=True)
def program_all(
    cells: np.ndarray,
    cache: np.ndarray,
    stuck: np.ndarray,
    count: int,
    z: np.ndarray,
    t: float,
    tau: float,
    s: float,
    set_polarity: bool,
    sigma: float,
    nu: float,
    n_states: float,
    has_t: bool,
    an: np.ndarray,
) -> None:
    """``count`` pulses of ``s`` steps on every cell of a formed array, in place on ``cells``,
    with the cached conductance of every cell (``cache``, flat) set at ``t``: :func:`program_flat`
    for all cells with one count (``count >= 1``; one draw of ``z`` per cell).

    ``an``: each cell's ``exp(-nu n / N)`` for its step count ``n``, computed beforehand by
    :func:`step_factors` (vectorised), or empty to compute it here.
    """
    denom = -math.expm1(-nu) if nu != 0.0 else 1.0
    root = math.sqrt(max(float(count), 1.0))
    n0 = count * s
    given = an.size > 0
    # cells last programmed together share their drift factor: computed once per time
    t_last = math.nan
    decay = 1.0
    for i in range(cells.shape[0]):
        rec = cells[i]
        if stuck[i]:
            cache[i] = rec[LO] + rec[X] * rec[SPAN]
            continue
        x0 = rec[X]
        if has_t:
            if rec[T] != t_last:
                t_last = rec[T]
                decay = math.exp(-(t - t_last) / tau)
            x0 = x0 * decay
        xi = x0 if set_polarity else 1.0 - x0
        if nu == 0.0:
            n = n0 * (1.0 + sigma * z[i] / root) if sigma > 0.0 else n0
            out = xi + n / n_states
        else:
            if given:
                a = an[i]
            else:
                n = n0 * (1.0 + sigma * z[i] / root) if sigma > 0.0 else n0
                a = math.exp(-nu * n / n_states)
            out = a * xi + (1.0 - a) / denom
        out = min(max(out, 0.0), 1.0)
        xn = out if set_polarity else 1.0 - out
        rec[X] = xn
        if has_t:
            rec[T] = t
        cache[i] = rec[LO] + xn * rec[SPAN]


def step_factors(count: int, z: np.ndarray, s: float, sigma: float, nu: float, n_states: float) -> np.ndarray:
    """``exp(-nu n / N)`` with ``n = count s (1 + sigma z / sqrt(count))`` for every draw ``z``,
    vectorised (numpy's SIMD exponential): the nonlinear part of :func:`program_all`."""
    n = (count * s) * (1.0 + (sigma / math.sqrt(max(float(count), 1.0))) * z)
    n *= -nu / n_states
    return np.exp(n, out=n)


# ------------------------------------------------------------------------------------- read-outs


@njit(cache=True, nogil=True)
def apply_changes(
    combined: np.ndarray,
    noise_sq: np.ndarray,
    idx: np.ndarray,
    g_before: np.ndarray,
    g_after: np.ndarray,
    sign: float,
    rel2: float,
) -> None:
    """``combined[idx] += sign (G_after - G_before)`` and, when ``noise_sq`` is not empty,
    ``noise_sq[idx] += rel2 (G_after^2 - G_before^2)`` (flat arrays, in place)."""
    has_sq = noise_sq.size > 0
    for k in range(idx.size):
        i = idx[k]
        ga = g_after[k]
        gb = g_before[k]
        combined[i] += sign * (ga - gb)
        if has_sq:
            noise_sq[i] += rel2 * (ga * ga - gb * gb)


@njit(cache=True, nogil=True)
def vmm_vector(
    v: np.ndarray,
    combined: np.ndarray,
    noise_sq: np.ndarray,
    forward: bool,
    read_reference_V: float,
    v0_V: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free current ``f(v) @ C`` (forward, ``C`` of shape (rows, cols)) or ``C @ f(v)``
    (backward) and, when ``noise_sq`` is not empty, its variance ``f(v)^2 @ S`` (else zeros).

    ``f`` is :func:`physics.iv_shape` (``v0_V <= 0``: ohmic). Zero drives are skipped.
    """
    rows, cols = combined.shape
    has_sq = noise_sq.size > 0
    ohmic = v0_V <= 0.0
    norm = 0.0 if ohmic else read_reference_V / math.sinh(read_reference_V / v0_V)
    n_out = cols if forward else rows
    cur = np.zeros(n_out)
    var = np.zeros(n_out)
    if forward:
        for r in range(rows):
            vr = v[r]
            if vr == 0.0:
                continue
            f = vr if ohmic else norm * math.sinh(vr / v0_V)
            crow = combined[r]
            for j in range(cols):
                cur[j] += f * crow[j]
            if has_sq:
                f2 = f * f
                srow = noise_sq[r]
                for j in range(cols):
                    var[j] += f2 * srow[j]
    else:
        fs = np.empty(cols)
        for j in range(cols):
            vj = v[j]
            fs[j] = vj if ohmic or vj == 0.0 else norm * math.sinh(vj / v0_V)
        for i in range(rows):
            crow = combined[i]
            acc = 0.0
            for j in range(cols):
                acc += fs[j] * crow[j]
            cur[i] = acc
            if has_sq:
                srow = noise_sq[i]
                acc2 = 0.0
                for j in range(cols):
                    acc2 += fs[j] * fs[j] * srow[j]
                var[i] = acc2
    return cur, var


@njit(cache=True, nogil=True)
def vmm_noisy(
    v: np.ndarray,
    combined: np.ndarray,
    noise_sq: np.ndarray,
    forward: bool,
    read_reference_V: float,
    v0_V: float,
    z: np.ndarray,
) -> np.ndarray:
    """:func:`vmm_vector` with its read noise added: ``I + sqrt(var) z`` (``z``: one draw per
    sensed line; no noise when ``noise_sq`` is empty)."""
    cur, var = vmm_vector(v, combined, noise_sq, forward, read_reference_V, v0_V)
    if noise_sq.size > 0:
        for j in range(cur.size):
            cur[j] = cur[j] + math.sqrt(var[j]) * z[j]
    return cur


def vmm_noisy_reference(
    v: np.ndarray, combined: np.ndarray, noise_sq: np.ndarray, forward: bool, read_reference_V: float,
    v0_V: float, z: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """:func:`vmm_noisy` in plain numpy (the reference)."""
    cur, var = vmm_vector_reference(v, combined, noise_sq, forward, read_reference_V, v0_V)
    return cur + np.sqrt(var) * z if noise_sq.size else cur


@njit(cache=True, nogil=True)
def read_cells(
    g: np.ndarray, f: float, rel: float, z: np.ndarray, voltage_V: float
) -> tuple[np.ndarray, np.ndarray]:
    """Read currents ``I = G f (1 + rel z)`` (A) and conductances ``I / V`` (S) of the conductances
    ``g`` (1-D, any stride; ``z``: one draw per cell, ignored when ``rel == 0``)."""
    n = g.size
    cur = np.empty(n)
    cond = np.empty(n)
    for k in range(n):
        i = g[k] * f
        if rel > 0.0:
            i = i * (z[k] * rel + 1.0)
        cur[k] = i
        cond[k] = i / voltage_V
    return cur, cond


def read_cells_reference(
    g: np.ndarray, f: float, rel: float, z: np.ndarray, voltage_V: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`read_cells` in plain numpy (the reference)."""
    i = g * f
    if rel > 0:
        noise = z * rel
        noise += 1.0
        i = i * noise
    return i, i / voltage_V


def vmm_vector_reference(
    v: np.ndarray, combined: np.ndarray, noise_sq: np.ndarray, forward: bool, read_reference_V: float,
    v0_V: float,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`vmm_vector` in plain numpy (the reference)."""
    f = physics.iv_shape(v, read_reference_V, None if v0_V <= 0 else v0_V)
    mat = combined if forward else combined.T
    cur = f @ mat
    if noise_sq.size == 0:
        return cur, np.zeros_like(cur)
    sq = noise_sq if forward else noise_sq.T
    return cur, (f * f) @ sq.astype(float)


def apply_changes_reference(
    combined: np.ndarray, noise_sq: np.ndarray, idx: np.ndarray, g_before: np.ndarray, g_after: np.ndarray,
    sign: float, rel2: float,
) -> None:  # fmt: skip
    """:func:`apply_changes` in plain numpy (the reference; ``idx`` distinct)."""
    combined[idx] += sign * (g_after - g_before)
    if noise_sq.size:
        noise_sq[idx] += rel2 * (g_after * g_after - g_before * g_before)


def outer_counts_reference(
    r: np.ndarray, c: np.ndarray, n_cols: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """:func:`outer_counts` from the dense outer product (the reference)."""
    dense = np.rint(np.multiply.outer(r, c)).astype(np.int64).reshape(-1)
    idx = np.flatnonzero(dense)
    counts = dense[idx]
    return idx, counts, int(counts.sum()), int(counts.max()) if counts.size else 0


def program_all_reference(
    cells: np.ndarray, cache: np.ndarray, stuck: np.ndarray, count: int, z: np.ndarray, t: float, tau: float,
    s: float, set_polarity: bool, sigma: float, nu: float, n_states: float, has_t: bool, an: np.ndarray,
) -> None:  # fmt: skip
    """:func:`program_all` in plain numpy: :func:`program_flat_reference` of every cell."""
    n = cells.shape[0]
    program_flat_reference(
        np.arange(n), np.full(n, count, dtype=np.int64), cells, cache, stuck, z, t, tau, s, set_polarity, sigma, nu,
        n_states, has_t, True,
    )  # fmt: skip


@dataclass(frozen=True)
class Implementation:
    """One implementation of every kernel: the compiled one or the numpy reference."""

    outer_counts: Callable[..., tuple[np.ndarray, np.ndarray, int, int]]
    program_flat: Callable[..., tuple[np.ndarray, np.ndarray, int]]
    program_all: Callable[..., None]
    apply_changes: Callable[..., None]
    vmm_vector: Callable[..., tuple[np.ndarray, np.ndarray]]
    read_cells: Callable[..., tuple[np.ndarray, np.ndarray]]
    vmm_noisy: Callable[..., np.ndarray]


def interruptible(kernel: Callable[..., Any]) -> Callable[..., Any]:
    """``kernel`` such that an interrupt landing in its call is raised as itself.

    A signal handler's exception (Ctrl-C's ``KeyboardInterrupt``, the engine's SIGTERM interrupt,
    an abort) can be raised while numba's dispatcher runs a Python callback of the call; numba
    then reports a ``SystemError`` ("returned a result with an exception set") chained to it, and
    the run would end ``failed`` instead of ``interrupted``. The original interrupt is re-raised.
    """

    @functools.wraps(kernel)
    def call(*args: Any) -> Any:
        try:
            return kernel(*args)
        except SystemError as exc:
            inner: BaseException | None = exc
            for _ in range(16):  # numba may chain SystemErrors of its own callbacks first
                inner = inner.__cause__ or inner.__context__ if inner is not None else None
                if inner is None or not isinstance(inner, Exception):
                    break
            if inner is not None and not isinstance(inner, Exception):
                raise inner from None
            raise

    return call


COMPILED = Implementation(
    *(interruptible(k) for k in (outer_counts, program_flat, program_all, apply_changes, vmm_vector, read_cells,
                                 vmm_noisy))
)  # fmt: skip
REFERENCE = Implementation(
    outer_counts_reference, program_flat_reference, program_all_reference, apply_changes_reference,
    vmm_vector_reference, read_cells_reference, vmm_noisy_reference,
)  # fmt: skip
#: the implementation the twin uses (:func:`use_reference` switches to the numpy one)
active: Implementation = COMPILED


@contextmanager
def use_reference() -> Iterator[None]:
    """Run the twin on the numpy reference implementations inside the block (for tests)."""
    global active
    before = active
    active = REFERENCE
    try:
        yield
    finally:
        active = before


_WARM = False


def warm_up() -> None:
    """Load every compiled kernel (from numba's on-disk cache, or compile it) by one tiny call, so
    that the first real call of a run does not pay it. Once per process."""
    global _WARM
    if _WARM:
        return
    cells = np.zeros((4, N_FIELDS))
    g, stuck, z = np.zeros(4), np.zeros(4, dtype=bool), np.zeros(4)
    idx, counts = np.arange(2, dtype=np.int64), np.ones(2, dtype=np.int64)
    outer_counts(np.ones(2), np.ones(2), 2)
    frozen = z.copy()
    frozen.flags.writeable = False  # draws come as read-only views of the stream's block
    m, sq = np.zeros((2, 2)), np.zeros((2, 2), dtype=np.float32)
    for draws in (z, frozen):
        program_flat(idx, counts, cells, g, stuck, draws, 1.0, 1.0, 1.0, True, 0.1, 0.5, 10.0, True, True)
        program_all(cells, g, stuck, 1, draws, 1.0, 1.0, 1.0, True, 0.1, 0.5, 10.0, True, np.zeros(0))
        vmm_noisy(np.ones(2), m, sq, True, 0.5, 1.0, draws[:2])
        read_cells(g, 0.5, 0.1, draws, 0.5)
    apply_changes(np.zeros(4), np.zeros(4, dtype=np.float32), idx, z[:2], z[:2], 1.0, 1.0)
    vmm_noisy(np.ones(2), m, np.zeros((0, 0), dtype=np.float32), True, 0.5, 1.0, np.zeros(0))
    _WARM = True


class NormalStream:
    """Standard-normal draws of a generator taken in blocks and handed out in order.

    The numbers handed out are exactly the generator's own ``standard_normal`` sequence (numpy
    draws them one after another whatever the request sizes), so drawing in bulk changes no
    result; it only spares a generator call per small request. Every draw from the generator
    must go through the stream, or the order would change.
    """

    def __init__(self, rng: np.random.Generator, block: int = 1 << 16) -> None:
        self.rng = rng
        self.block = block
        self._buf = np.zeros(0)
        self._pos = 0

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` draws (a fresh array, or a read-only view of the block)."""
        pos = self._pos
        end = pos + n
        if end <= self._buf.size:
            self._pos = end
            return self._buf[pos:end]
        rest = self._buf[pos:]
        if n - rest.size >= self.block:
            out = np.empty(n)
            out[: rest.size] = rest
            self.rng.standard_normal(out=out[rest.size :])
            self._buf, self._pos = np.zeros(0), 0
            return out
        buf = np.concatenate((rest, self.rng.standard_normal(self.block)))
        buf.flags.writeable = False
        self._buf, self._pos = buf, n
        return buf[:n]
