"""Neuron activations for training protocols: ``f(z)`` and its derivative, by name.

An activation is any object with ``name``, ``f(z) -> y`` and ``df(z, y) -> dy/dz`` (vectorised
numpy; ``y = f(z)`` is passed so derivatives that are cheap in ``y`` need not recompute ``f``).
:func:`get_activation` builds one from a name; :class:`TableActivation` interpolates a measured
transfer curve (e.g. a neuron I-V curve turned into output vs input), so a device-derived
activation plugs in the same way.

Default: ``sigmoid`` (``f = 1 / (1 + exp(-z))``), the activation the floating-point reference
of the Choi et al. 2021 numbers used; its outputs in (0, 1) are non-negative, so the next layer's
rows are driven with one voltage polarity and the outer-product update maps onto a single
``program_outer`` per array.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol as TypingProtocol

import numpy as np

from hil.errors import ConfigError
from hil.store import Store
from protocols.training.measured_activation import activation_from_run


class Activation(TypingProtocol):
    """What a training protocol needs from an activation (``nonnegative``: all outputs >= 0).

    ``name`` and ``nonnegative`` are read-only: frozen dataclass fields and properties both fit.
    """

    @property
    def name(self) -> str: ...

    @property
    def nonnegative(self) -> bool: ...

    def f(self, z: np.ndarray) -> np.ndarray: ...

    def df(self, z: np.ndarray, y: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class Sigmoid:
    """``f(z) = 1 / (1 + exp(-z))``, ``f' = y (1 - y)``; outputs in (0, 1)."""

    name: str = "sigmoid"
    nonnegative: bool = True

    def f(self, z: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float)))  # overflow-free logistic

    def df(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return y * (1.0 - y)


@dataclass(frozen=True)
class Tanh:
    """``f(z) = tanh(z)``, ``f' = 1 - y^2``; outputs in (-1, 1) (both read polarities)."""

    name: str = "tanh"
    nonnegative: bool = False

    def f(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(np.asarray(z, dtype=float))

    def df(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return 1.0 - y * y


@dataclass(frozen=True)
class HardSigmoid:
    """``f(z) = clip(0.25 z + 0.5, 0, 1)`` (a piecewise-linear neuron), ``f' = 0.25`` inside."""

    name: str = "hard_sigmoid"
    nonnegative: bool = True

    def f(self, z: np.ndarray) -> np.ndarray:
        return np.clip(0.25 * np.asarray(z, dtype=float) + 0.5, 0.0, 1.0)

    def df(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.where((y > 0.0) & (y < 1.0), 0.25, 0.0)


@dataclass(frozen=True)
class TableActivation:
    """An activation interpolated (piecewise linear) from a measured transfer curve.

    Args:
        z_points: increasing input points (the neuron's input, in weight-sum units).
        y_points: the output at each input point.
        name: the name recorded with runs.

    Outside the table the output is held at its end values and the derivative is 0. The
    derivative inside is the slope of the segment holding ``z``.
    """

    z_points: tuple[float, ...]
    y_points: tuple[float, ...]
    name: str = "table"

    @property
    def nonnegative(self) -> bool:
        """Whether every output is >= 0 (then inputs to the next layer use one read polarity)."""
        return min(self.y_points) >= 0.0

    def __post_init__(self) -> None:
        z = np.asarray(self.z_points, dtype=float)
        y = np.asarray(self.y_points, dtype=float)
        if z.ndim != 1 or z.shape != y.shape or z.size < 2:
            raise ConfigError("activation: a table needs at least two (z, y) points of equal length")
        if not np.all(np.diff(z) > 0):
            raise ConfigError("activation: table inputs z_points must be strictly increasing")
        if not (np.all(np.isfinite(z)) and np.all(np.isfinite(y))):
            raise ConfigError("activation: table points must be finite")

    def f(self, z: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(z, dtype=float), self.z_points, self.y_points)

    def df(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        zp = np.asarray(self.z_points)
        slopes = np.diff(np.asarray(self.y_points)) / np.diff(zp)
        zz = np.asarray(z, dtype=float)
        seg = np.clip(np.searchsorted(zp, zz, side="right") - 1, 0, slopes.size - 1)
        inside = (zz >= zp[0]) & (zz <= zp[-1])
        return np.where(inside, slopes[seg], 0.0)


class InputDerivativeCurve(TypingProtocol):
    """A transfer curve ``f(z)`` whose derivative takes only the input, ``df(z)``."""

    def f(self, z: np.ndarray) -> np.ndarray: ...

    def df(self, z: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class InputDerivativeActivation:
    """Adapter for an activation object whose derivative takes only the input, ``df(z)``
    (e.g. one interpolated from a measured neuron I-V curve)."""

    inner: InputDerivativeCurve
    name: str = "measured"
    nonnegative: bool = False

    def f(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.f(np.asarray(z, dtype=float)), dtype=float)

    def df(self, z: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.asarray(self.inner.df(np.asarray(z, dtype=float)), dtype=float)


#: Built-in activations by name (factories, so every run gets its own object).
ACTIVATIONS: dict[str, Callable[[], Activation]] = {
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "hard_sigmoid": HardSigmoid,
}


def activation_names() -> list[str]:
    """Names :func:`get_activation` accepts."""
    return sorted(ACTIVATIONS)


#: Prefix of an activation measured on a neuron device: ``iv-run:RUN`` or ``iv-run:RUN:ARRAY:ROW:COL``.
MEASURED_PREFIX = "iv-run:"


def parse_measured(name: str) -> tuple[int, str | None, int | None, int | None] | None:
    """``(run, array, row, col)`` of an ``iv-run:`` activation name, None for any other name.

    Raises:
        ConfigError: an ``iv-run:`` name that is not ``iv-run:RUN`` or ``iv-run:RUN:ARRAY:ROW:COL``.
    """
    if not name.startswith(MEASURED_PREFIX):
        return None
    parts = name[len(MEASURED_PREFIX) :].split(":")
    try:
        if len(parts) == 1:
            return int(parts[0]), None, None, None
        if len(parts) == 4 and parts[1]:
            return int(parts[0]), parts[1], int(parts[2]), int(parts[3])
    except ValueError:
        pass
    raise ConfigError(
        f"activation: '{name}' must be iv-run:RUN or iv-run:RUN:ARRAY:ROW:COL "
        "(RUN, ROW, COL integers: an I-V run of the same database)"
    )


def is_activation_name(name: str) -> bool:
    """Whether ``name`` is a built-in activation or a well-formed ``iv-run:`` one."""
    if name in ACTIVATIONS:
        return True
    try:
        return parse_measured(name) is not None
    except ConfigError:
        return False


def get_activation(name: str, store: Store | None = None) -> Activation:
    """The activation called ``name``.

    ``iv-run:RUN[:ARRAY:ROW:COL]`` is the I-V curve of a neuron device measured in run ``RUN``
    of ``store`` (see :func:`protocols.training.measured_activation.activation_from_run`): the input ``z`` is the
    device voltage in units of the current peak's voltage, the output the current in units of
    the peak current.

    Raises:
        ConfigError: an unknown name (listing the known ones), or a measured activation whose run
            has no usable I-V readings.
    """
    measured = parse_measured(name)
    if measured is not None:
        if store is None:
            raise ConfigError(f"activation: '{name}' needs the run's database")
        run, array, row, col = measured
        curve = activation_from_run(store, run, array, row, col)
        lo, hi = curve.voltage_range_V
        z = np.linspace(lo, hi, 2001) / curve.scales[0]
        return InputDerivativeActivation(curve, name=name, nonnegative=bool(curve.f(z).min() >= 0.0))
    return _builtin(name)


def check_activation(name: str, store: Store) -> None:
    """Check, reading only, that the activation ``name`` can be built from ``store``: for
    ``iv-run:RUN[:ARRAY:ROW:COL]`` that run ``RUN`` is in the database and holds the device's
    I-V readings (a training run's preflight, before the run is recorded).

    Raises:
        ConfigError: one line naming the activation and what is missing.
    """
    measured = parse_measured(name)
    if measured is None:
        _builtin(name)
        return
    run = measured[0]
    try:
        store.run(run)
    except ConfigError:
        raise ConfigError(
            f"activation: '{name}' names run {run}, which is not in this database "
            "(give an I-V run of the same database: dc-iv, iv-sweep or a sequence ramp)"
        ) from None
    get_activation(name, store)


def _builtin(name: str) -> Activation:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ConfigError(
            f"activation: '{name}' is not known (known: {', '.join(activation_names())})"
        ) from None
