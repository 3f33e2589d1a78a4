"""The emulated bench: the shared twin, the cables, the relays, and the physics between them.

Every emulator of a station shares one :class:`Wiring`: one :class:`~sim_backend.twin.TwinBackend`
(the devices), the cabling the station's routing describes (array lines on matrix columns, SMU
HI terminals and the ground return on matrix rows) and the switch matrices' relay states. An
emulated SMU therefore drives and senses only what the emulated matrices have connected: with
every relay open it measures ~0 A (a 10 TOhm leakage), and a pulse reaches exactly the cells
whose row and column the closed relays join to its HI terminal and to ground.

Pulses reach the twin the way the direct twin backend applies them, so the same protocol gives
the same trajectory on both (the seam): consecutive identical pulses on the same cells, with
no measurement between them, are one ``twin.pulse(..., count=N)`` call (one variability draw
per cell, as the closed form of an N-pulse train); a measurement applies what is pending first
and then reads with ``twin.read``. Source levels that cannot switch a device (below the
preset's thresholds, e.g. 0 V idle or a 0.5 V read) change nothing and draw no random numbers.

Time: the bench clock is wall time since the bench started, advanced further by instrument-side
waits (pulse widths, trigger delays) that the emulators play out without sleeping; the twin's
clock is moved up to it before every operation, so retention drift follows real time.

Not modelled: sneak paths through floating lines (only cells whose row and column are both
switched in carry current), more than one source on one net, cable capacitance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

from hil.types import Pulse
from sim_backend import physics
from sim_backend.twin import TwinBackend

if TYPE_CHECKING:
    from hil.backends.smu_matrix_config import SmuMatrixPlan

#: Leakage conductance (S) of an open matrix: what an SMU "measures" with nothing connected.
OPEN_LEAKAGE_S = 1e-13


class RelayMatrix(Protocol):
    """What the wiring needs of a switch-matrix emulator."""

    def crosspoints(self) -> set[tuple[str, int]]:
        """Closed crosspoints as ``(matrix row label, global matrix column)``."""
        ...


@dataclass(frozen=True)
class Line:
    """An array line cabled to a matrix column."""

    array: str
    kind: Literal["row", "col"]
    index: int


@dataclass(frozen=True)
class Connection:
    """Cells one SMU terminal reaches now: ``cells`` of ``array`` with the device voltage sign.

    ``sign`` is +1 when the SMU HI reaches the cell's row and ground its column, -1 the reverse.
    """

    array: str
    cells: tuple[tuple[int, int], ...]
    sign: int


@dataclass
class _Pending:
    array: str
    cells: tuple[tuple[int, int], ...]
    amplitude_V: float
    width_s: float
    count: int


@dataclass
class Measurement:
    """A source-measure result: current (A) out of HI, voltage (V) at HI, compliance flag."""

    current_A: float
    voltage_V: float
    in_compliance: bool


@dataclass
class Wiring:
    """The shared state of one emulated bench (see the module docstring).

    Attributes:
        twin: the devices.
        pins: per matrix instrument name, the array line on each matrix column.
        terminals: ``(smu name, channel)`` -> ``(matrix name, matrix row)`` of its HI terminal.
        grounds: per matrix, the rows cabled to ground (the SMUs' LO).
        direct: ``(smu name, channel)`` -> ``(array, row, col)`` for an SMU cabled straight to
            one cell (an SMU emulated alone, without a matrix).
        matrices: the relay-matrix emulators by instrument name (they register themselves).
    """

    twin: TwinBackend
    pins: dict[str, dict[int, Line]] = field(default_factory=dict)
    terminals: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    grounds: dict[str, set[str]] = field(default_factory=dict)
    direct: dict[tuple[str, str], tuple[str, int, int]] = field(default_factory=dict)
    matrices: dict[str, RelayMatrix] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    twin_calls: list[tuple[str, str, int]] = field(default_factory=list)
    _pending: _Pending | None = None
    _t0: float = field(default_factory=time.perf_counter)
    _virtual: float = 0.0
    _frozen: int = 0
    _quiet_V: float | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def from_plan(cls, twin: TwinBackend, plan: SmuMatrixPlan) -> Wiring:
        """The cabling of a validated ``smu-matrix`` station."""
        wiring = cls(twin)
        for a in plan.arrays.values():
            pins = wiring.pins.setdefault(a.matrix, {})
            for r, pin in enumerate(a.row_pins):
                pins[pin] = Line(a.array, "row", r)
            for c, pin in enumerate(a.col_pins):
                pins[pin] = Line(a.array, "col", c)
            wiring.terminals[(a.smu, a.channel)] = (a.matrix, a.routing.drive.matrix_row)
            wiring.grounds.setdefault(a.matrix, set()).add(a.routing.ground_row)
        return wiring

    def attach_matrix(self, name: str, matrix: RelayMatrix) -> None:
        self.matrices[name] = matrix

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """Bench clock (s): wall time since the bench started, or later if sequences ran ahead.

        While a message executes (:meth:`frozen`) wall time does not count: only the
        instrument-side waits it plays out advance the clock, so their durations are exact."""
        if self._frozen:
            return self._virtual
        wall = time.perf_counter() - self._t0
        if wall > self._virtual:
            self._virtual = wall
        return self._virtual

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Hold the bench (and its clock) for the duration of one instrument message."""
        with self.lock:
            self.now()
            self._frozen += 1
            try:
                yield
            finally:
                self._frozen -= 1

    def advance(self, seconds: float) -> float:
        """Advance the bench clock by an instrument-side wait (s); returns the new time."""
        with self.lock:
            self._virtual = self.now() + max(float(seconds), 0.0)
            return self._virtual

    def _sync_twin(self) -> None:
        behind = self.now() - self.twin.now()
        if behind > 0:
            self.twin.delay(behind)

    # ------------------------------------------------------------------ topology
    def connections(self, smu: str, channel: str) -> tuple[list[Connection], bool]:
        """Cells the HI terminal of ``(smu, channel)`` reaches through closed relays, and whether
        HI is shorted straight to ground (one matrix column on both the HI row and a ground row)."""
        key = (smu, channel)
        if key in self.direct:
            array, r, c = self.direct[key]
            return [Connection(array, ((r, c),), +1)], False
        if key not in self.terminals:
            return [], False
        matrix_name, hi_row = self.terminals[key]
        matrix = self.matrices.get(matrix_name)
        if matrix is None:
            return [], False
        closed = matrix.crosspoints()
        grounds = self.grounds.get(matrix_name, set())
        hi = {col for row, col in closed if row == hi_row}
        lo = {col for row, col in closed if row in grounds}
        if hi & lo:
            return [], True
        pins = self.pins.get(matrix_name, {})
        groups: dict[tuple[str, int], list[tuple[int, int]]] = {}
        for a in (pins[p] for p in hi if p in pins):
            for b in (pins[p] for p in lo if p in pins):
                if a.array != b.array or a.kind == b.kind:
                    continue
                if a.kind == "row":
                    groups.setdefault((a.array, +1), []).append((a.index, b.index))
                else:
                    groups.setdefault((a.array, -1), []).append((b.index, a.index))
        return [
            Connection(arr, tuple(sorted(cells)), sign) for (arr, sign), cells in sorted(groups.items())
        ], False

    # ------------------------------------------------------------------ physics
    def _true_current(self, conns: list[Connection], voltage_V: float) -> float:
        """Noise-free current (A) the connected cells draw at ``voltage_V`` (no twin state change)."""
        total = OPEN_LEAKAGE_S * voltage_V
        for conn in conns:
            model = self.twin.model(conn.array)
            spec = model.spec
            idx = np.array([r * spec.cols + c for r, c in conn.cells])
            g = model.conductance(self.twin.now(), idx)
            f = physics.iv_shape(conn.sign * voltage_V, model.preset.read_reference_V, model.preset.iv_v0_V)
            total += conn.sign * float(np.sum(g * f))
        return total

    def _limited_voltage(
        self, conns: list[Connection], voltage_V: float, limit_A: float
    ) -> tuple[float, bool]:
        """The voltage the devices see when a source set to ``voltage_V`` is limited to ``limit_A``."""
        if abs(self._true_current(conns, voltage_V)) <= limit_A:
            return voltage_V, False
        return _bisect(lambda v: abs(self._true_current(conns, v)) - limit_A, 0.0, voltage_V), True

    def _disturbs(self, array: str, amplitude_V: float, width_s: float) -> bool:
        model = self.twin.model(array)
        polarity, s = physics.step_strength(model.preset, amplitude_V, width_s)
        forms = abs(amplitude_V) >= model.preset.forming_voltage_V and not bool(model.formed.all())
        return (polarity != "none" and s > 0) or forms

    def _quiet_below_V(self) -> float:
        """The largest |V| that cannot switch any device of the twin (no threshold reached)."""
        if self._quiet_V is None:
            levels = []
            for name in self.twin.arrays:
                p = self.twin.model(name).preset
                levels += [p.set_threshold_V, p.reset_threshold_V]
                if not p.forming_free:
                    levels.append(p.forming_voltage_V)
            self._quiet_V = min(levels) if levels else math.inf
        return self._quiet_V

    def stimulus(self, smu: str, channel: str, voltage_V: float, width_s: float, limit_A: float) -> None:
        """The HI terminal sat at ``voltage_V`` (limited to ``limit_A``) for ``width_s``: a pulse.

        Levels that cannot switch the connected devices change nothing. Identical consecutive
        pulses on the same cells accumulate into one train, applied on the next measurement
        (or when a different pulse comes, or on :meth:`settle`).
        """
        if width_s <= 0 or abs(voltage_V) < self._quiet_below_V():
            return
        with self.lock:
            conns, shorted = self.connections(smu, channel)
            if shorted or not conns:
                return
            v_dev, _ = self._limited_voltage(conns, voltage_V, limit_A)
            for conn in conns:
                amplitude = conn.sign * v_dev
                if not self._disturbs(conn.array, amplitude, width_s):
                    continue
                p = self._pending
                if (
                    p is not None
                    and p.array == conn.array
                    and p.cells == conn.cells
                    and p.amplitude_V == amplitude
                    and abs(p.width_s - width_s) <= 1e-9 * width_s
                ):
                    p.count += 1
                    continue
                self.settle()
                self._pending = _Pending(conn.array, conn.cells, amplitude, width_s, 1)

    def settle(self) -> None:
        """Apply the pending pulse train to the twin now."""
        with self.lock:
            p, self._pending = self._pending, None
            if p is None:
                return
            self._sync_twin()
            self.twin.pulse(p.array, list(p.cells), Pulse(p.amplitude_V, p.width_s), count=p.count)
            self.twin_calls.append(("pulse", p.array, p.count))

    def measure_v(self, smu: str, channel: str, voltage_V: float, limit_A: float) -> Measurement:
        """Source ``voltage_V`` with current limit ``limit_A`` and measure the current (A).

        In compliance the reading is the limit and the voltage the one at which the devices
        draw it."""
        with self.lock:
            self.settle()
            conns, shorted = self.connections(smu, channel)
            limit = abs(limit_A)
            if shorted:
                return Measurement(math.copysign(limit, voltage_V or 1.0), 0.0, True)
            total = OPEN_LEAKAGE_S * voltage_V
            if conns:
                self._sync_twin()
            for conn in conns:
                read_v = conn.sign * voltage_V
                if read_v == 0.0:
                    continue
                readout = self.twin.read(conn.array, list(conn.cells), read_v)
                self.twin_calls.append(("read", conn.array, len(conn.cells)))
                total += conn.sign * float(np.sum(readout.current_A))
            if abs(total) <= limit:
                return Measurement(total, voltage_V, False)
            v_dev, _ = self._limited_voltage(conns, voltage_V, limit)
            return Measurement(math.copysign(limit, total), v_dev, True)

    def measure_i(self, smu: str, channel: str, current_A: float, limit_V: float) -> Measurement:
        """Source ``current_A`` with voltage limit ``limit_V`` and measure the voltage (V)."""
        with self.lock:
            self.settle()
            conns, shorted = self.connections(smu, channel)
            if shorted:
                return Measurement(current_A, 0.0, False)
            lim = abs(limit_V)
            if abs(self._true_current(conns, math.copysign(lim, current_A or 1.0))) < abs(current_A):
                v = math.copysign(lim, current_A or 1.0)
                return Measurement(self._true_current(conns, v), v, True)
            v = _bisect(
                lambda x: abs(self._true_current(conns, x)) - abs(current_A),
                0.0,
                math.copysign(lim, current_A or 1.0),
            )
            return Measurement(current_A, v, False)

    def conductance(self, array: str, row: int, col: int) -> float:
        """True conductance (S) of one cell now, pending pulses applied (for tests)."""
        with self.lock:
            self.settle()
            self._sync_twin()
            model = self.twin.model(array)
            return float(model.conductance(self.twin.now(), np.array([row * model.spec.cols + col]))[0])


def _bisect(f: Callable[[float], float], lo: float, hi: float, iterations: int = 60) -> float:
    """A root of the monotone ``f`` between ``lo`` (f <= 0) and ``hi`` (f > 0)."""
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        if f(mid) > 0:
            hi = mid
        else:
            lo = mid
    return lo
