"""Stochastic pulse-coincidence updates: the crossbar's fully parallel outer product.

Gokmen & Vlasov (2016) turn ``dW = -lr delta x^T`` into pulses the array can apply all at once:
during an update of ``bit_length`` time slots, row ``i`` fires in each slot with probability
``p_i = C_x |x_i|`` and column ``j`` with probability ``q_j = C_d |delta_j|`` (independent
Bernoulli streams); a cell is programmed once in every slot where its row and its column fire
together. Its pulse count is then ``n_ij ~ Binomial(bit_length, p_i q_j)`` with

    E[n_ij]   = bit_length p_i q_j
    Var[n_ij] = bit_length p_i q_j (1 - p_i q_j)

and, because a row's stream is shared by its cells, counts in one row are correlated:
``Cov(n_ij, n_ik) = bit_length p_i (1 - p_i) q_j q_k`` (and likewise down a column). The expected
count is the rounded rule's ``lr |x_i delta_j| / (a step)`` when ``C_x C_d bit_length = lr / (a
step)``; :func:`stream_probabilities` splits that gain between rows and columns so that neither
probability exceeds 1 (probabilities that would are clipped, the update saturates there).

The sign of a cell's change is ``-sign(x_i) sign(delta_j)``: with potentiation-only updates the
cell's pulses go to the pair device of that sign. This module is pure arithmetic on the host;
applying the counts is one parallel programming call per array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Streams:
    """The row and column pulse streams of one update.

    Attributes:
        rows: ``(n_rows, bit_length)`` bool, True where row ``i`` fires in slot ``t``.
        cols: ``(n_cols, bit_length)`` bool, True where column ``j`` fires in slot ``t``.
        row_sign: ``(n_rows,)`` the sign (+1/-1/0) of each row's input ``x_i``.
        col_sign: ``(n_cols,)`` the sign of each column's ``delta_j``.
    """

    rows: np.ndarray
    cols: np.ndarray
    row_sign: np.ndarray
    col_sign: np.ndarray

    @property
    def bit_length(self) -> int:
        return int(self.rows.shape[1])


def stream_probabilities(
    x: np.ndarray, delta: np.ndarray, gain: float, bit_length: int
) -> tuple[np.ndarray, np.ndarray]:
    """Firing probabilities ``(p, q)`` of rows and columns for an update whose expected pulse
    count per cell is ``gain |x_i delta_j|`` (``gain = lr / (a step)``, pulses per unit of
    ``x delta``).

    The product ``C_x C_d = gain / bit_length`` is split so that the largest row and the largest
    column probability are equal (update management, Gokmen & Vlasov 2016): both streams use
    their full range before either clips. Probabilities above 1 are clipped to 1.
    """
    if bit_length < 1:
        raise ValueError(f"bit_length: {bit_length} must be at least 1")
    if gain < 0:
        raise ValueError(f"gain: {gain} must be >= 0")
    ax, ad = np.abs(np.asarray(x, dtype=float)), np.abs(np.asarray(delta, dtype=float))
    x_max, d_max = float(ax.max(initial=0.0)), float(ad.max(initial=0.0))
    if x_max == 0.0 or d_max == 0.0 or gain == 0.0:
        return np.zeros_like(ax), np.zeros_like(ad)
    product = gain / bit_length  # C_x C_d
    # C_x x_max = C_d d_max  =>  C_x = sqrt(product d_max / x_max)
    c_x = np.sqrt(product * d_max / x_max)
    c_d = product / c_x
    return np.minimum(c_x * ax, 1.0), np.minimum(c_d * ad, 1.0)


def draw_streams(
    x: np.ndarray, delta: np.ndarray, gain: float, bit_length: int, rng: np.random.Generator
) -> Streams:
    """Draw the row and column streams of one update (see :func:`stream_probabilities`).

    Only rows and columns with a non-zero probability are drawn (a zero input never fires: most
    of an image's pixels), each slot one uniform float32 against its probability.
    """
    p, q = stream_probabilities(x, delta, gain, bit_length)
    return Streams(
        _stream(p, bit_length, rng),
        _stream(q, bit_length, rng),
        np.sign(x).astype(np.int8),
        np.sign(delta).astype(np.int8),
    )


def _stream(prob: np.ndarray, bit_length: int, rng: np.random.Generator) -> np.ndarray:
    """``(prob.size, bit_length)`` bool: each entry True with its row's probability."""
    out = np.zeros((prob.size, bit_length), dtype=bool)
    live = np.flatnonzero(prob)
    if live.size:
        draws = rng.random((live.size, bit_length), dtype=np.float32)
        out[live] = draws < prob[live, None].astype(np.float32)
    return out


def coincidences(streams: Streams) -> np.ndarray:
    """Pulse count of every cell: the slots where its row and its column both fire,
    ``(n_rows, n_cols)`` int64 (one integer matrix product of the two streams)."""
    r = streams.rows.astype(np.float32)
    c = streams.cols.astype(np.float32)
    return np.rint(r @ c.T).astype(np.int64)


def signed_counts(streams: Streams) -> tuple[np.ndarray, np.ndarray]:
    """Counts for the pair's two devices, ``(plus, minus)``: the coincidences of cells whose
    change ``-sign(x_i) sign(delta_j)`` is positive, and of those where it is negative."""
    n = coincidences(streams)
    direction = -np.multiply.outer(streams.row_sign, streams.col_sign)
    return np.where(direction > 0, n, 0), np.where(direction < 0, n, 0)


def expected_counts(x: np.ndarray, delta: np.ndarray, gain: float, bit_length: int) -> np.ndarray:
    """``E[n_ij] = bit_length p_i q_j``: the mean count of every cell (closed form)."""
    p, q = stream_probabilities(x, delta, gain, bit_length)
    return bit_length * np.multiply.outer(p, q)


def count_variance(x: np.ndarray, delta: np.ndarray, gain: float, bit_length: int) -> np.ndarray:
    """``Var[n_ij] = bit_length p_i q_j (1 - p_i q_j)`` (closed form)."""
    p, q = stream_probabilities(x, delta, gain, bit_length)
    pq = np.multiply.outer(p, q)
    return bit_length * pq * (1.0 - pq)
