"""Safety limits, enforced in one place below every protocol and above every backend.

:class:`SafeBackend` wraps any :class:`~hil.backend.Backend`. Every command is checked against
the station's :class:`SafetyLimits` *before* anything is forwarded: a command outside the limits
raises :class:`LimitError` naming the parameter, its value and the allowed range, and the
wrapped backend never sees it. The run engine only ever hands protocols a ``SafeBackend``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from hil.backend import Backend
from hil.types import (
    DEFAULT_READ_VOLTAGE_V,
    ArraySpec,
    Capabilities,
    CellsLike,
    Direction,
    IVResult,
    ProgramResult,
    Pulse,
    PulseTrainResult,
    Readout,
    SafeStateReport,
    as_cells,
)


class LimitError(ValueError):
    """A command outside the station's safety limits. Nothing was sent to the backend.

    Attributes:
        parameter: the offending parameter's name.
        value: its value.
        allowed: the allowed range, in words.
    """

    def __init__(self, parameter: str, value: object, allowed: str, limit: str | None = None) -> None:
        self.parameter = parameter
        self.value = value
        self.allowed = allowed
        self.limit = limit
        where = f" (station limit {limit})" if limit else ""
        super().__init__(f"{parameter} = {_fmt(value)} is outside the allowed range {allowed}{where}")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class SafetyLimits(BaseModel):
    """A station's safety limits (SI units). Every command must stay inside them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_abs_voltage_V: float = Field(5.0, gt=0, le=200, description="largest |V| any output may source (V)")
    max_read_voltage_V: float = Field(
        1.0, gt=0, le=200, description="largest |V| of a read or VMM input, non-disturbing (V)"
    )
    max_compliance_A: float = Field(1e-2, gt=0, le=10, description="largest current compliance (A)")
    min_pulse_width_s: float = Field(1e-9, gt=0, description="shortest pulse (s)")
    max_pulse_width_s: float = Field(1e-2, gt=0, le=100, description="longest pulse (s)")
    max_pulses_per_call: int = Field(
        10_000, ge=1, description="most pulses one cell may receive in one call (train or programming)"
    )
    max_dwell_s: float = Field(1.0, gt=0, le=3600, description="longest dwell per I-V sweep point (s)")

    @model_validator(mode="after")
    def _consistent(self) -> SafetyLimits:
        if self.max_read_voltage_V > self.max_abs_voltage_V:
            raise ValueError(
                f"max_read_voltage_V = {self.max_read_voltage_V:g} V must be <= "
                f"max_abs_voltage_V = {self.max_abs_voltage_V:g} V"
            )
        if self.min_pulse_width_s > self.max_pulse_width_s:
            raise ValueError(
                f"min_pulse_width_s = {self.min_pulse_width_s:g} s must be <= "
                f"max_pulse_width_s = {self.max_pulse_width_s:g} s"
            )
        return self

    # ------------------------------------------------------------------ checks
    def check_voltage(self, value: float, parameter: str = "amplitude_V") -> None:
        """|V| within ``max_abs_voltage_V``."""
        _finite(parameter, value)
        if abs(value) > self.max_abs_voltage_V:
            lim = self.max_abs_voltage_V
            raise LimitError(parameter, value, f"[{-lim:g}, {lim:g}] V", "max_abs_voltage_V")

    def check_read_voltage(self, value: float, parameter: str = "read_voltage_V") -> None:
        """0 < |V| <= ``max_read_voltage_V``."""
        _finite(parameter, value)
        lim = self.max_read_voltage_V
        if value == 0 or abs(value) > lim:
            raise LimitError(parameter, value, f"0 < |V| <= {lim:g} V", "max_read_voltage_V")

    def check_pulse(self, pulse: Pulse, count: int = 1, prefix: str = "") -> None:
        """Amplitude, width and count of a pulse train."""
        self.check_voltage(pulse.amplitude_V, f"{prefix}amplitude_V")
        self.check_width(pulse.width_s, f"{prefix}width_s")
        self.check_count(count, f"{prefix}count")
        if pulse.compliance_A is not None:
            self.check_compliance(pulse.compliance_A, f"{prefix}compliance_A")

    def check_width(self, value: float, parameter: str = "width_s") -> None:
        _finite(parameter, value)
        if not (self.min_pulse_width_s <= value <= self.max_pulse_width_s):
            raise LimitError(
                parameter,
                value,
                f"[{self.min_pulse_width_s:g}, {self.max_pulse_width_s:g}] s",
                "min_pulse_width_s/max_pulse_width_s",
            )

    def check_count(self, value: int, parameter: str = "count") -> None:
        if int(value) != value or not (1 <= value <= self.max_pulses_per_call):
            raise LimitError(
                parameter, value, f"[1, {self.max_pulses_per_call}] pulses", "max_pulses_per_call"
            )

    def check_counts(
        self,
        counts: np.ndarray,
        shape: tuple[int, ...],
        parameter: str = "counts",
        shape_is: str = "the array's shape",
    ) -> np.ndarray:
        """Pulse counts of ``shape`` (what that shape is: ``shape_is``): integer, non-negative, at
        most ``max_pulses_per_call`` per cell."""
        arr = np.asarray(counts)
        if arr.shape != shape:
            raise LimitError(f"{parameter}.shape", arr.shape, f"{shape} ({shape_is})")
        if arr.size == 0:
            return arr.astype(np.int64)
        if not np.issubdtype(arr.dtype, np.integer) and (
            not np.all(np.isfinite(arr)) or np.any(arr != np.rint(arr))
        ):
            raise LimitError(parameter, "non-integer entries", "whole numbers of pulses")
        lo, hi = arr.min(), arr.max()
        if lo < 0:
            raise LimitError(
                f"{parameter} (min)", int(lo), f"[0, {self.max_pulses_per_call}] pulses per cell"
            )
        if hi > self.max_pulses_per_call:
            raise LimitError(
                f"{parameter} (max)",
                int(hi),
                f"[0, {self.max_pulses_per_call}] pulses per cell",
                "max_pulses_per_call",
            )
        return arr.astype(np.int64, copy=False)

    def check_compliance(self, value: float, parameter: str = "compliance_A") -> None:
        _finite(parameter, value)
        if not (0 < value <= self.max_compliance_A):
            raise LimitError(parameter, value, f"(0, {self.max_compliance_A:g}] A", "max_compliance_A")

    def check_dwell(self, value: float, parameter: str = "dwell_s") -> None:
        _finite(parameter, value)
        if not (0 < value <= self.max_dwell_s):
            raise LimitError(parameter, value, f"(0, {self.max_dwell_s:g}] s", "max_dwell_s")


def _finite(parameter: str, value: float) -> None:
    try:
        ok = math.isfinite(float(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise LimitError(parameter, value, "a finite number")


class SafeBackend(Backend):
    """A backend that checks every command against :class:`SafetyLimits` before forwarding it.

    This is the single place where limits are enforced; it sits below every protocol and above
    every backend implementation, the twin included.
    """

    def __init__(self, inner: Backend, limits: SafetyLimits) -> None:
        self.inner = inner
        self.limits = limits
        #: pulse shapes already found inside the limits
        self._pulses_ok: set[Pulse] = set()
        #: inputs of each read-out structure already checked (arrays, direction, signs given)
        self._vmm_inputs: dict[tuple[tuple[str, ...], str, int | None], int] = {}

    # description is forwarded unchanged
    @property
    def arrays(self) -> Mapping[str, ArraySpec]:
        return self.inner.arrays

    @property
    def capabilities(self) -> Capabilities:
        return self.inner.capabilities

    def identify(self) -> dict[str, str]:
        return self.inner.identify()

    def now(self) -> float:
        return self.inner.now()

    def _check_shape(self, pulse: Pulse) -> None:
        # a pulse (frozen: its values cannot change) found inside the limits is remembered, so
        # the hot path checks each distinct pulse shape once; every new shape is checked
        if pulse in self._pulses_ok:
            return
        self.limits.check_voltage(pulse.amplitude_V)
        self.limits.check_width(pulse.width_s)
        if pulse.compliance_A is not None:
            self.limits.check_compliance(pulse.compliance_A)
        if type(pulse) is Pulse and len(self._pulses_ok) < 1024:
            self._pulses_ok.add(pulse)

    # checked commands
    def read(self, array: str, cells: CellsLike = None, voltage_V: float = DEFAULT_READ_VOLTAGE_V) -> Readout:
        spec = self.spec(array)
        checked = None if cells is None else as_cells(cells, spec)
        self.limits.check_read_voltage(voltage_V, "voltage_V")
        return self.inner.read(array, checked, voltage_V)

    def pulse(
        self,
        array: str,
        cells: CellsLike,
        pulse: Pulse,
        count: int = 1,
        read_after: bool = False,
        read_voltage_V: float = DEFAULT_READ_VOLTAGE_V,
    ) -> PulseTrainResult:
        spec = self.spec(array)
        checked = None if cells is None else as_cells(cells, spec)  # None: every cell, all valid
        self.limits.check_pulse(pulse, count)
        if read_after:
            self.limits.check_read_voltage(read_voltage_V)
        return self.inner.pulse(array, checked, pulse, int(count), read_after, read_voltage_V)

    def program(self, array: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        spec = self.spec(array)
        checked = self.limits.check_counts(counts, spec.shape)
        self._check_shape(pulse)
        return self.inner.program(array, checked, pulse)

    def program_cells(self, array: str, cells: CellsLike, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        spec = self.spec(array)
        checked = as_cells(cells, spec)
        n = len(checked)
        checked_counts = self.limits.check_counts(counts, (n,), shape_is="one count per cell")
        if n > 1:
            flat = checked[:, 0] * spec.cols + checked[:, 1]
            # a strictly increasing list (row-major, as the protocols give it) is distinct
            # without sorting; any other order is checked by sorting
            if not bool(np.all(flat[1:] > flat[:-1])) and np.unique(flat).size != n:
                raise LimitError("cells", "repeated cells", "distinct (row, col) pairs")
        self._check_shape(pulse)
        return self.inner.program_cells(array, checked, checked_counts, pulse)

    def program_outer(self, array: str, r: np.ndarray, c: np.ndarray, pulse: Pulse) -> ProgramResult:
        spec = self.spec(array)
        r_arr = np.asarray(r, dtype=float)
        c_arr = np.asarray(c, dtype=float)
        peaks = []
        for name, vec, n in (("r", r_arr, spec.rows), ("c", c_arr, spec.cols)):
            if vec.shape != (n,):
                raise LimitError(f"{name}.shape", vec.shape, f"({n},)")
            if vec.size:
                # NaN fails both comparisons, +-inf one of them: two reductions check it all
                lo, hi = float(np.minimum.reduce(vec)), float(np.maximum.reduce(vec))
                if not (lo >= 0.0 and hi < math.inf):
                    raise LimitError(name, "negative or non-finite entries", "finite values >= 0")
                peaks.append(hi)
        self._check_shape(pulse)
        if len(peaks) == 2:
            largest = int(np.rint(peaks[0] * peaks[1]))
            if largest > self.limits.max_pulses_per_call:
                raise LimitError(
                    "round(r_i * c_j) (max)",
                    largest,
                    f"[0, {self.limits.max_pulses_per_call}] pulses per cell",
                    "max_pulses_per_call",
                )
        return self.inner.program_outer(array, r_arr, c_arr, pulse)

    def program_streams(self, array: str, rows: np.ndarray, cols: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Checks: both streams bool, ``(n_rows, bit_length)`` and ``(n_cols, bit_length)`` of the
        array's shape with one ``bit_length``, ``1 <= bit_length <= max_pulses_per_call`` (a cell
        receives at most ``bit_length`` pulses, so this bound is the per-cell pulse limit of
        every other programming call, checked without forming the counts), and the pulse."""
        spec = self.spec(array)
        r_arr, c_arr = np.asarray(rows), np.asarray(cols)
        for name, arr, n in (("rows", r_arr, spec.rows), ("cols", c_arr, spec.cols)):
            if arr.dtype != np.bool_:
                raise LimitError(f"{name}.dtype", str(arr.dtype), "bool (a cell fires or not in each slot)")
            if arr.ndim != 2 or arr.shape[0] != n:
                raise LimitError(f"{name}.shape", arr.shape, f"({n}, bit_length) (one stream per {name[:-1]})")
        bits = r_arr.shape[1]
        if c_arr.shape[1] != bits:
            raise LimitError("cols.shape", c_arr.shape, f"({spec.cols}, {bits}) (the rows' bit_length)")
        if not 1 <= bits <= self.limits.max_pulses_per_call:
            raise LimitError(
                "bit_length", bits, f"[1, {self.limits.max_pulses_per_call}] slots", "max_pulses_per_call"
            )
        self._check_shape(pulse)
        return self.inner.program_streams(array, r_arr, c_arr, pulse)

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: np.ndarray,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        # the read-out's structure (arrays, shapes, signs, direction) is checked once and
        # remembered; its voltages are checked on every call
        key = (tuple(names), direction, None if signs is None else len(signs))
        n_in = self._vmm_inputs.get(key)
        if n_in is None:
            n_in = self._check_vmm_structure(names, direction, signs)
            self._vmm_inputs[key] = n_in
        v = np.asarray(voltages_V, dtype=float)
        if v.ndim not in (1, 2) or v.shape[-1] != n_in:
            raise LimitError("voltages_V.shape", v.shape, f"(..., {n_in})")
        if v.size:
            peak = float(np.abs(v).max())  # NaN propagates: not <= any limit
            if not peak <= self.limits.max_read_voltage_V and not np.all(np.isfinite(v)):
                raise LimitError("voltages_V", "non-finite entries", "finite voltages")
            if peak > self.limits.max_read_voltage_V:
                lim = self.limits.max_read_voltage_V
                raise LimitError("voltages_V (max |V|)", peak, f"[{-lim:g}, {lim:g}] V", "max_read_voltage_V")
        return self.inner.vmm(names if len(names) > 1 else names[0], v, direction, signs)

    def _check_vmm_structure(self, names: list[str], direction: str, signs: Sequence[float] | None) -> int:
        """Check a read-out's arrays, shapes, direction and signs; returns its number of inputs."""
        if not names:
            raise LimitError("arrays", "[]", "at least one array")
        specs = [self.spec(n) for n in names]
        if any(s.shape != specs[0].shape for s in specs):
            raise LimitError("arrays", names, "arrays of one shape")
        if direction not in ("forward", "backward"):
            raise LimitError("direction", direction, "'forward' or 'backward'")
        if signs is not None and len(signs) != len(names):
            raise LimitError("signs", len(signs), f"one sign per array ({len(names)})")
        return specs[0].rows if direction == "forward" else specs[0].cols

    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        spec = self.spec(array)
        as_cells([(row, col)], spec)
        v = np.asarray(voltages_V, dtype=float)
        if v.ndim != 1 or v.size == 0:
            raise LimitError("voltages_V.shape", v.shape, "a non-empty 1-D list of voltages")
        if not np.all(np.isfinite(v)):
            raise LimitError("voltages_V", "non-finite entries", "finite voltages")
        peak = float(np.abs(v).max())
        if peak > self.limits.max_abs_voltage_V:
            lim = self.limits.max_abs_voltage_V
            raise LimitError("voltages_V (max |V|)", peak, f"[{-lim:g}, {lim:g}] V", "max_abs_voltage_V")
        self.limits.check_compliance(compliance_A)
        self.limits.check_dwell(dwell_s)
        return self.inner.iv_sweep(array, int(row), int(col), v, float(compliance_A), float(dwell_s))

    def delay(self, seconds: float) -> None:
        _finite("seconds", seconds)
        if seconds < 0:
            raise LimitError("seconds", seconds, "[0, inf) s")
        self.inner.delay(float(seconds))

    def safe_state(self) -> SafeStateReport:
        return self.inner.safe_state()

    def close(self) -> None:
        self.inner.close()
