"""Data types shared by every backend, protocol and the store.

All quantities are SI: volts (V), amperes (A), siemens (S), seconds (s), square metres (m^2).
A device is addressed as ``(array name, row, col)``; many-cell operations take an integer
array of shape ``(n, 2)`` holding ``(row, col)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

import numpy as np

#: A many-cell address: ``None`` means every cell of the array, otherwise ``(n, 2)`` row/col pairs.
CellsLike: TypeAlias = None | np.ndarray | Sequence[tuple[int, int]] | Iterable[tuple[int, int]]

#: Direction of a vector-matrix multiply: ``forward`` drives the rows and senses the columns,
#: ``backward`` drives the columns and senses the rows (the transpose, used by backpropagation).
Direction: TypeAlias = Literal["forward", "backward"]

DEFAULT_READ_VOLTAGE_V = 0.5


@dataclass(frozen=True)
class ArraySpec:
    """One crossbar array as a station declares it.

    Attributes:
        name: unique array name within the station.
        rows: number of word lines.
        cols: number of bit lines.
        device_area_m2: active area of every device of the array (m^2).
    """

    name: str
    rows: int
    cols: int
    device_area_m2: float

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    @property
    def size(self) -> int:
        return self.rows * self.cols

    @property
    def diameter_m(self) -> float:
        """Diameter (m) of a circular device with this area."""
        return 2.0 * math.sqrt(self.device_area_m2 / math.pi)

    @staticmethod
    def area_from_diameter(diameter_m: float) -> float:
        """Area (m^2) of a circular device of the given diameter (m)."""
        return math.pi * (diameter_m / 2.0) ** 2


@dataclass(frozen=True)
class SafeStateReport:
    """What the instruments confirmed when a backend was put in its safe state.

    Attributes:
        outputs: ``off`` when every source confirmed its output off, else ``unconfirmed``.
        routes: ``open`` when every switch confirmed its routes open, else ``unconfirmed``.
        instruments: per instrument, what it confirmed (or why it could not).
        problems: what could not be confirmed; empty when everything was.
    """

    outputs: Literal["off", "unconfirmed"]
    routes: Literal["open", "unconfirmed"]
    instruments: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()

    @property
    def confirmed(self) -> bool:
        return self.outputs == "off" and self.routes == "open" and not self.problems

    @classmethod
    def unconfirmed(cls, why: str) -> SafeStateReport:
        """Nothing confirmed, for the reason ``why`` (the safe state failed or was not reported)."""
        return cls("unconfirmed", "unconfirmed", problems=(why,))

    def record(self) -> dict[str, object]:
        """The JSON detail of a run's ``safe-state`` event."""
        detail: dict[str, object] = {
            "outputs": self.outputs,
            "routes": self.routes,
            "confirmed": self.confirmed,
            "instruments": dict(self.instruments),
        }
        if self.problems:
            detail["problems"] = list(self.problems)
        return detail


@dataclass(frozen=True)
class DeviceRequest:
    """What a protocol asks of the devices of an array it needs (every field optional).

    A backend that fabricates its arrays (the twin) builds them so; a backend whose arrays are
    physical takes them as they are, ignores ``n_states`` and ``window_scale`` (the protocol
    measures what the devices do), and refuses a variability request it cannot honour.

    Attributes:
        n_states: conductance states from Gmin to Gmax (potentiation pulses across the window).
        window_scale: the device window ``Gmax - Gmin`` relative to the station's devices of the
            same area (1 keeps it).
        c2c_sigma_over_mu: cycle-to-cycle sigma/mu of the conductance change per pulse.
        d2d_sigma: device-to-device relative sigma of Gmin.
    """

    n_states: int | None = None
    window_scale: float | None = None
    c2c_sigma_over_mu: float | None = None
    d2d_sigma: float | None = None

    def variability(self) -> dict[str, float]:
        """The variability fields that are set, by name (what only a fabricated array can take)."""
        return {
            name: value
            for name, value in (
                ("c2c_sigma_over_mu", self.c2c_sigma_over_mu),
                ("d2d_sigma", self.d2d_sigma),
            )
            if value is not None
        }


@dataclass(frozen=True)
class ArrayRequest:
    """An array a protocol needs: its name, shape and device area, and what it asks of the devices."""

    spec: ArraySpec
    device: DeviceRequest = field(default_factory=DeviceRequest)


@dataclass(frozen=True)
class Pulse:
    """A rectangular voltage pulse: amplitude (V, signed), width (s) and current compliance (A).

    ``compliance_A`` of ``None`` lets the backend use its station's pulse compliance; a source
    sets it before its output turns on.
    """

    amplitude_V: float
    width_s: float
    compliance_A: float | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do natively, so protocols can pick the fast path.

    Attributes:
        native_vmm: vector-matrix multiply is one physical operation (else it is emulated by reads).
        parallel_programming: a whole array is programmed in one physical operation
            (pulse coincidence on rows and columns) rather than cell by cell.
        instrument_side_trains: pulse trains with reads run on the instrument, without a
            host round trip per pulse.
        simulated_time: ``delay`` advances a simulated clock instantly (the twin).
        parallel_reads: a whole array is read in one physical operation.
    """

    native_vmm: bool = False
    parallel_programming: bool = False
    instrument_side_trains: bool = False
    simulated_time: bool = False
    parallel_reads: bool = False


@dataclass
class Readout:
    """Result of a read: conductance (S) and current (A) at a read voltage (V).

    ``conductance_S`` and ``current_A`` have shape ``(rows, cols)`` for a whole-array read and
    ``(n,)`` for a list of cells; ``cells`` is always the flat ``(n, 2)`` list in row-major order.
    """

    array: str
    cells: np.ndarray
    voltage_V: float
    conductance_S: np.ndarray
    current_A: np.ndarray
    t_s: float

    @property
    def flat_conductance_S(self) -> np.ndarray:
        return self.conductance_S.reshape(-1)

    @property
    def flat_current_A(self) -> np.ndarray:
        return self.current_A.reshape(-1)


@dataclass
class PulseTrainResult:
    """Result of a pulse train applied to many cells.

    Attributes:
        array: array name.
        cells: ``(n, 2)`` addressed cells.
        pulse: the pulse applied.
        count: pulses applied to every cell.
        conductance_S: ``(n, count)`` conductance read after every pulse (S), or ``None`` when
            the train ran without reads.
        read_voltage_V: read voltage (V) of the reads, if any.
        t_s: ``(count,)`` backend-clock times (s) of the reads, or of the pulses without reads.
    """

    array: str
    cells: np.ndarray
    pulse: Pulse
    count: int
    conductance_S: np.ndarray | None
    read_voltage_V: float | None
    t_s: np.ndarray


@dataclass
class ProgramResult:
    """Result of programming a whole array from a pulse-count matrix.

    Attributes:
        pulses_applied: total pulses over all cells.
        cells_programmed: cells that received at least one pulse.
        max_count: largest count of any one cell (the duration of a fully parallel update,
            in pulse periods).
        duration_s: time the operation took on the backend clock (s).
    """

    array: str
    pulse: Pulse
    pulses_applied: int
    cells_programmed: int
    max_count: int
    duration_s: float


@dataclass
class IVResult:
    """A DC I-V sweep of one cell: applied and measured voltage (V), current (A), time (s)."""

    array: str
    row: int
    col: int
    voltage_V: np.ndarray
    current_A: np.ndarray
    t_s: np.ndarray
    compliance_A: float
    in_compliance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))


def as_cells(cells: CellsLike, spec: ArraySpec) -> np.ndarray:
    """Normalise a cell list to an ``(n, 2)`` int64 array (``None``: every cell, row-major).

    Raises:
        ValueError: a cell lies outside the array, or the shape is not ``(n, 2)``.
    """
    if cells is None:
        r, c = np.divmod(np.arange(spec.size, dtype=np.int64), spec.cols)
        return np.stack([r, c], axis=1)
    arr = np.asarray(cells if isinstance(cells, np.ndarray) else list(cells), dtype=np.int64)
    if arr.ndim == 1 and arr.size == 2:
        arr = arr.reshape(1, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"cells: expected (row, col) pairs of shape (n, 2), got shape {arr.shape}")
    if arr.size:
        rows, cols = arr[:, 0], arr[:, 1]
        bad = (rows < 0) | (rows >= spec.rows) | (cols < 0) | (cols >= spec.cols)
        if bad.any():
            r, c = arr[np.argmax(bad)]
            raise ValueError(
                f"cells: ({r}, {c}) is outside array '{spec.name}' "
                f"(rows 0..{spec.rows - 1}, cols 0..{spec.cols - 1})"
            )
    return arr
