"""The floating-point baseline (``synapse=fp``, and the float training of ``mode=ex-situ``).

Plain numpy weights (one ``(inputs + bias, outputs)`` matrix per layer, weight units) and exact
SGD, ``W -= lr x delta^T``; the pixel layer skips the rows of zero inputs (about 80 % of an
MNIST image), which changes no result.
"""

from __future__ import annotations

import numpy as np

from protocols.training.activations import Activation


class FloatNetwork:
    """The floating-point baseline: plain numpy weights, exact SGD (sparse inputs skip zero rows)."""

    def __init__(self, weights: list[np.ndarray]) -> None:
        self.w = [np.array(w, dtype=float) for w in weights]

    def weighted_sums(self, idx: int, x: np.ndarray) -> np.ndarray:
        """``z = W^T x`` of layer ``idx`` (0-based) for one input vector ``x``."""
        if idx == 0:  # pixels: about 80 % zeros, skip their rows
            nz = np.flatnonzero(x)
            return x[nz] @ self.w[0][nz]
        return x @ self.w[idx]

    def batch_sums(self, idx: int, x: np.ndarray) -> np.ndarray:
        """``z = x W`` of layer ``idx`` (0-based) for a batch of input rows ``x``."""
        return x @ self.w[idx]

    def backpropagate(
        self,
        xs: list[np.ndarray],
        zs: list[np.ndarray],
        ys: list[np.ndarray],
        delta: np.ndarray,
        act: Activation,
        lr: float,
    ) -> None:
        """One SGD step from the output error ``delta``: each layer's ``W -= lr x delta^T``, last
        layer first, the error passed back through the weights before they change.

        ``xs, zs, ys`` are every layer's inputs (bias appended), weighted sums and activations.
        """
        w = self.w
        for idx in range(len(w) - 1, -1, -1):
            x = xs[idx]
            back = None
            if idx > 0:
                back = (w[idx] @ delta)[: len(ys[idx - 1])]
            if idx == 0:
                nz = np.flatnonzero(x)
                w[idx][nz] -= lr * np.multiply.outer(x[nz], delta)
            else:
                w[idx] -= lr * np.multiply.outer(x, delta)
            if back is not None:
                delta = back * act.df(zs[idx - 1], ys[idx - 1])
