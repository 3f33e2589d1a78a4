"""A neuron activation measured on a device: the I-V curve of a neuron device as ``f(z)``.

After Yang et al. 2024 (a negative-differential-resistance neuron whose current rises, peaks and
falls with voltage): an I-V characterisation (``dc-iv``, ``iv-sweep``, or a ``sequence`` ramp) of
a neuron device gives the activation a training protocol applies, with its derivative for
backpropagation. :class:`MeasuredActivation` has the interface the training protocols take
(``name``, ``f(z)``, ``df(z, y)``):

- input ``z`` maps to the device voltage ``V = z * input_scale_V``, the output is
  ``y = I(V) / output_scale_A``; by default ``input_scale_V`` is the voltage of the current peak
  (or the largest |V| measured when there is no peak) and ``output_scale_A`` the current there, so
  ``f(1) = 1`` at the peak of an NDR device;
- between the measured points the curve is the shape-preserving piecewise-cubic Hermite
  interpolant (PCHIP, Fritsch-Carlson): it passes through every point, adds no extrema of its
  own, and has a continuous derivative, which ``df`` returns exactly;
- outside the measured voltages ``f`` holds its end values and ``df`` is 0.

Readings taken at the same source voltage (up and down sweeps, several cycles) are averaged first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hil.errors import ConfigError
from hil.store import Store


def pchip_slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Node derivatives of the Fritsch-Carlson monotone cubic interpolant through ``(x, y)``."""
    h = np.diff(x)
    delta = np.diff(y) / h
    d = np.zeros_like(y)
    if x.size == 2:
        d[:] = delta[0]
        return d
    w1 = 2 * h[1:] + h[:-1]
    w2 = h[1:] + 2 * h[:-1]
    same = delta[:-1] * delta[1:] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
    d[1:-1] = np.where(same, harmonic, 0.0)
    d[0] = _edge(h[0], h[1], delta[0], delta[1])
    d[-1] = _edge(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _edge(h0: float, h1: float, m0: float, m1: float) -> float:
    """One-sided three-point end slope, limited so the end interval stays shape-preserving."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if np.sign(d) != np.sign(m0):
        return 0.0
    if np.sign(m0) != np.sign(m1) and abs(d) > abs(3 * m0):
        return 3 * m0
    return float(d)


def first_peak(voltage_V: np.ndarray, current_A: np.ndarray, drop: float = 0.05) -> int:
    """Index of the current peak: on the branch with the larger currents, going out from 0 V, the
    running maximum of |I| before |I| first falls ``drop`` (5 %) below it; the largest |I| if it
    never falls (no negative differential resistance)."""
    v = np.asarray(voltage_V, dtype=float)
    a = np.abs(np.asarray(current_A, dtype=float))
    pos, neg = np.flatnonzero(v > 0), np.flatnonzero(v < 0)[::-1]
    branch = pos if pos.size and (not neg.size or a[pos].max() >= a[neg].max()) else neg
    if branch.size == 0:
        return int(np.argmax(a))
    running = np.maximum.accumulate(a[branch])
    fell = np.flatnonzero(a[branch] < (1.0 - drop) * running)
    upto = branch if fell.size == 0 else branch[: fell[0]]
    return int(upto[np.argmax(a[upto])])


@dataclass(frozen=True)
class MeasuredActivation:
    """An activation interpolated from a measured I-V curve (see the module docstring).

    Args:
        voltage_V: measured voltages (any order; duplicates are averaged).
        current_A: measured currents at those voltages.
        input_scale_V: volts per unit of input ``z`` (default: the voltage of the current peak).
        output_scale_A: amperes per unit of output (default: the current at that voltage).
        name: name recorded with training runs.
    """

    voltage_V: tuple[float, ...]
    current_A: tuple[float, ...]
    input_scale_V: float | None = None
    output_scale_A: float | None = None
    name: str = "measured"
    _v: np.ndarray = field(init=False, repr=False, compare=False)
    _i: np.ndarray = field(init=False, repr=False, compare=False)
    _d: np.ndarray = field(init=False, repr=False, compare=False)
    _scale_v: float = field(init=False, repr=False, compare=False)
    _scale_i: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = np.asarray(self.voltage_V, dtype=float)
        i = np.asarray(self.current_A, dtype=float)
        if v.ndim != 1 or v.shape != i.shape:
            raise ConfigError("activation: voltage_V and current_A must be 1-D of equal length")
        ok = np.isfinite(v) & np.isfinite(i)
        v, i = v[ok], i[ok]
        table = pd.DataFrame({"v": np.round(v, 9), "i": i}).groupby("v", sort=True)["i"].mean()
        if len(table) < 3:
            raise ConfigError(f"activation: need at least 3 distinct measured voltages, got {len(table)}")
        vs = table.index.to_numpy(float)
        is_ = table.to_numpy(float)
        scale_v, scale_i = self.input_scale_V, self.output_scale_A
        if scale_v is None or scale_i is None:
            k = first_peak(vs, is_)
            scale_v = scale_v if scale_v is not None else abs(float(vs[k]))
            scale_i = scale_i if scale_i is not None else abs(float(is_[k]))
        if not (scale_v and scale_v > 0 and scale_i and scale_i > 0):
            raise ConfigError("activation: input_scale_V and output_scale_A must be > 0")
        object.__setattr__(self, "_v", vs)
        object.__setattr__(self, "_i", is_)
        object.__setattr__(self, "_d", pchip_slopes(vs, is_))
        object.__setattr__(self, "_scale_v", float(scale_v))
        object.__setattr__(self, "_scale_i", float(scale_i))

    @property
    def voltage_range_V(self) -> tuple[float, float]:
        """The lowest and highest measured voltage (V)."""
        return float(self._v[0]), float(self._v[-1])

    @property
    def scales(self) -> tuple[float, float]:
        """``(input_scale_V, output_scale_A)`` in use."""
        return self._scale_v, self._scale_i

    def _locate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        v = np.asarray(z, dtype=float) * self._scale_v
        k = np.clip(np.searchsorted(self._v, v, side="right") - 1, 0, self._v.size - 2)
        h = self._v[k + 1] - self._v[k]
        t = (np.clip(v, self._v[0], self._v[-1]) - self._v[k]) / h
        return v, k, h, t

    def current(self, voltage_V: np.ndarray) -> np.ndarray:
        """The interpolated current (A) at ``voltage_V`` (ends held outside the measured range)."""
        return self.f(np.asarray(voltage_V, dtype=float) / self._scale_v) * self._scale_i

    def f(self, z: np.ndarray) -> np.ndarray:
        """``y = I(z * input_scale_V) / output_scale_A``."""
        _, k, h, t = self._locate(z)
        t2, t3 = t * t, t * t * t
        y = (
            (2 * t3 - 3 * t2 + 1) * self._i[k]
            + (t3 - 2 * t2 + t) * h * self._d[k]
            + (-2 * t3 + 3 * t2) * self._i[k + 1]
            + (t3 - t2) * h * self._d[k + 1]
        )
        return y / self._scale_i

    def df(self, z: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
        """``dy/dz`` of :meth:`f` (exact derivative of the interpolant; 0 outside the measured range)."""
        v, k, h, t = self._locate(z)
        t2 = t * t
        di_dv = (
            (6 * t2 - 6 * t) / h * self._i[k]
            + (3 * t2 - 4 * t + 1) * self._d[k]
            + (-6 * t2 + 6 * t) / h * self._i[k + 1]
            + (3 * t2 - 2 * t) * self._d[k + 1]
        )
        inside = (v >= self._v[0]) & (v <= self._v[-1])
        return np.where(inside, di_dv * self._scale_v / self._scale_i, 0.0)


IV_KINDS = ("iv", "ramp", "forming")


def activation_from_run(
    store: Store,
    run_id: int,
    array: str | None = None,
    row: int | None = None,
    col: int | None = None,
    input_scale_V: float | None = None,
    output_scale_A: float | None = None,
) -> MeasuredActivation:
    """The :class:`MeasuredActivation` of one device's I-V curve in run ``run_id``.

    The device is ``(array, row, col)``; each may be omitted when the run's I-V readings (kinds
    ``iv``, ``ramp``) hold only one value of it. Every I-V reading of the device (all cycles and
    sweep directions, measured voltage and current) enters the curve.

    Raises:
        ConfigError: no I-V readings, or an ambiguous or unknown device.
    """
    df = store.readings_df(run_id)
    df = df[df["kind"].isin(IV_KINDS)]
    if df.empty:
        raise ConfigError(f"activation: run {run_id} has no I-V readings (kinds {', '.join(IV_KINDS)})")
    for name, wanted in (("array", array), ("row", row), ("col", col)):
        values = sorted(df[name].unique().tolist())
        if wanted is None:
            if len(values) > 1:
                raise ConfigError(
                    f"activation: run {run_id} has I-V readings of several {name}s {values}; give {name}"
                )
            continue
        if wanted not in values:
            raise ConfigError(
                f"activation: {name} {wanted!r} has no I-V readings in run {run_id} (have {values})"
            )
        df = df[df[name] == wanted]
    dev = df.iloc[0]
    return MeasuredActivation(
        tuple(df["voltage_V"].to_numpy(float)),
        tuple(df["current_A"].to_numpy(float)),
        input_scale_V,
        output_scale_A,
        name=f"measured:run-{run_id}:{dev['array']}({int(dev['row'])},{int(dev['col'])})",
    )
