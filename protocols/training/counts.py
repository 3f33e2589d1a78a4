"""Pulse counts of one device's share of an update, computed on the host in one pass.

The general update path (signed inputs, or ``pulse_mapping=stochastic``) turns
``dW = -lr delta x^T`` into pulse counts for the cells of the rows whose input is non-zero. For
the pair device of sign ``s`` (+1 for the + device, -1 for the - device) a cell's real-valued
count is

    p_ij = max(s dW_ij, 0) / (a step),    dW_ij = -lr (x_i delta_j)

and its pulse count is ``rint(p_ij)`` (``round``) or, under stochastic rounding,
``floor(p_ij) + [u_ij < p_ij - floor(p_ij)]`` with one uniform draw ``u_ij`` in [0, 1) per
cell, capped at ``cap`` pulses.

:func:`host_counts` does that for a whole block of rows in one compiled pass, returning only the
cells that get a pulse (row-major, as ``np.nonzero`` of the dense counts gives them);
:func:`host_counts_reference` is the same arithmetic in plain numpy, operation for operation,
so the two agree exactly. The caller draws the uniforms (the whole block, from the run's
generator), so both consume the same numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def host_counts(
    x: np.ndarray, delta: np.ndarray, neg_lr: float, sign: float, step: float, cap: int, u: np.ndarray,
    stochastic: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """Row index (into ``x``), column index and pulse count of every cell that gets a pulse.

    Args:
        x: the non-zero inputs of the rows updated (one per row).
        delta: the layer's error terms (one per column).
        neg_lr: ``-lr``.
        sign: +1.0 for the + device, -1.0 for the - device.
        step: the conductance step in weight units (``a step``), > 0.
        cap: the most pulses a cell gets.
        u: uniform draws ``(x.size, delta.size)`` (stochastic rounding; ignored otherwise).
        stochastic: stochastic rounding instead of ``rint``.
    """
    n_rows, n_cols = x.size, delta.size
    cap_f = float(cap)
    # the columns of each sign, in order: a cell's change has the sign of -sign x_i delta_j, so
    # a row needs only the columns whose delta has the sign that makes it positive (the exact
    # product then decides: it may still round to zero)
    by_sign = np.empty((2, n_cols), np.int64)
    n_by_sign = np.zeros(2, np.int64)
    for j in range(n_cols):
        if delta[j] > 0.0:
            by_sign[0, n_by_sign[0]] = j
            n_by_sign[0] += 1
        elif delta[j] < 0.0:
            by_sign[1, n_by_sign[1]] = j
            n_by_sign[1] += 1
    room = 0
    for i in range(n_rows):
        room += max(n_by_sign[0], n_by_sign[1]) if x[i] != 0.0 else 0
    rr = np.empty(room + 1, np.int64)
    cc = np.empty(room + 1, np.int64)
    nn = np.empty(room + 1, np.int64)
    n = 0
    for i in range(n_rows):
        xi = x[i]
        if xi == 0.0:
            continue
        # delta_j > 0 makes the change positive when sign * neg_lr * x_i > 0
        side = 0 if sign * neg_lr * xi > 0.0 else 1
        for k in range(n_by_sign[side]):
            j = by_sign[side, k]
            w = sign * (neg_lr * (xi * delta[j]))
            p = w / step if w > 0.0 else 0.0
            if stochastic:
                fl = np.floor(p)
                v = fl + (1.0 if u[i, j] < p - fl else 0.0)
            else:
                v = np.rint(p)
            v = min(v, cap_f)
            # written unconditionally, kept when non-zero (no branch on the random draw)
            rr[n], cc[n], nn[n] = i, j, np.int64(v)
            n += nn[n] != 0
    return rr[:n].copy(), cc[:n].copy(), nn[:n].copy()


def host_counts_reference(
    x: np.ndarray, delta: np.ndarray, neg_lr: float, sign: float, step: float, cap: int, u: np.ndarray,
    stochastic: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """:func:`host_counts` in plain numpy over the dense block (the reference)."""
    dw = neg_lr * np.multiply.outer(x, delta)
    p_counts = np.maximum(sign * dw, 0.0) / step
    if stochastic:
        floor = np.floor(p_counts)
        sub = floor + (u < (p_counts - floor))
    else:
        sub = np.rint(p_counts)
    counts = np.minimum(sub, cap).astype(np.int64)
    rr, cc = np.nonzero(counts)
    return rr.astype(np.int64), cc.astype(np.int64), counts[rr, cc]
