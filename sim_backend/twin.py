"""The direct twin backend: the backend interface implemented on the simulated arrays.

It has every capability a crossbar could have: native VMM, fully parallel programming, pulse
trains with reads in one call, parallel reads, and a simulated clock that ``delay`` advances
instantly (so retention runs of months take milliseconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

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
    as_cells,
)
from sim_backend.array_model import TwinArray, TwinTiming
from sim_backend.devices import make_array
from sim_backend.preset import DevicePreset


class TwinBackend(Backend):
    """Backend on the simulated twin.

    Args:
        arrays: the arrays to fabricate.
        preset: device parameters of every array.
        seed: seeds fabrication, programming and read noise (same seed, same results).
        timing: durations of reads and pulse gaps on the simulated clock.
        presets: per-array presets that replace ``preset`` for the named arrays.
    """

    def __init__(
        self,
        arrays: Sequence[ArraySpec],
        preset: DevicePreset,
        seed: int = 0,
        timing: TwinTiming | None = None,
        presets: Mapping[str, DevicePreset] | None = None,
    ) -> None:
        self.preset = preset
        self.seed = int(seed)
        self.timing = timing or TwinTiming()
        overrides = dict(presets or {})
        self._specs = {a.name: a for a in arrays}
        self._models = {a.name: make_array(a, overrides.get(a.name, preset), self.seed) for a in arrays}
        self._t = 0.0
        self.output_on = False
        self.safe_state_calls = 0
        self.closed = False

    # ------------------------------------------------------------------ description
    @property
    def arrays(self) -> Mapping[str, ArraySpec]:
        return self._specs

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            native_vmm=True,
            parallel_programming=True,
            instrument_side_trains=True,
            simulated_time=True,
            parallel_reads=True,
        )

    def identify(self) -> dict[str, str]:
        return {"backend": "twin", "preset": self.preset.name, "seed": str(self.seed)}

    def model(self, array: str) -> TwinArray:
        """The simulated array behind ``array`` (for tests and the wire-level emulators)."""
        self.spec(array)
        return self._models[array]

    def now(self) -> float:
        return self._t

    def _index(self, array: str, cells: CellsLike) -> tuple[ArraySpec, np.ndarray, np.ndarray | None]:
        spec = self.spec(array)
        if cells is None:
            return spec, as_cells(None, spec), None
        arr = as_cells(cells, spec)
        return spec, arr, arr[:, 0] * spec.cols + arr[:, 1]

    # ------------------------------------------------------------------ operations
    def read(self, array: str, cells: CellsLike = None, voltage_V: float = DEFAULT_READ_VOLTAGE_V) -> Readout:
        spec, arr, idx = self._index(array, cells)
        t = self._t
        current = self._models[array].read_current(idx, voltage_V, t)
        n_reads = spec.rows if idx is None else len(arr)
        self._t += n_reads * self.timing.read_time_s
        if idx is None:
            current = current.reshape(spec.shape)
        return Readout(array, arr, float(voltage_V), current / voltage_V, current, t)

    def pulse(
        self,
        array: str,
        cells: CellsLike,
        pulse: Pulse,
        count: int = 1,
        read_after: bool = False,
        read_voltage_V: float = DEFAULT_READ_VOLTAGE_V,
    ) -> PulseTrainResult:
        spec, arr, idx = self._index(array, cells)
        model = self._models[array]
        period = pulse.width_s + self.timing.pulse_gap_s
        if not read_after:
            times = self._t + period * np.arange(1, count + 1)
            model.apply_pulses(idx, pulse.amplitude_V, pulse.width_s, count, self._t)
            self._t += count * period
            return PulseTrainResult(array, arr, pulse, count, None, None, times)
        g = np.empty((len(arr), count))
        times = np.empty(count)
        for k in range(count):
            model.apply_pulses(idx, pulse.amplitude_V, pulse.width_s, 1, self._t)
            self._t += period
            times[k] = self._t
            g[:, k] = model.read_current(idx, read_voltage_V, self._t) / read_voltage_V
            self._t += self.timing.read_time_s
        return PulseTrainResult(array, arr, pulse, count, g, float(read_voltage_V), times)

    def program(self, array: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        spec = self.spec(array)
        counts = np.asarray(counts)
        idx = np.flatnonzero(counts)
        return self._program_flat(array, spec, idx, counts.reshape(-1)[idx], pulse)

    def program_outer(self, array: str, r: np.ndarray, c: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Outer-product update touching only rows and columns that carry pulses."""
        spec = self.spec(array)
        r = np.asarray(r, dtype=float)
        c = np.asarray(c, dtype=float)
        ri = np.flatnonzero(r > 0)
        ci = np.flatnonzero(c > 0)
        sub = np.rint(np.multiply.outer(r[ri], c[ci])).astype(np.int64)
        nz_r, nz_c = np.nonzero(sub)
        idx = ri[nz_r] * spec.cols + ci[nz_c]
        return self._program_flat(array, spec, idx, sub[nz_r, nz_c], pulse)

    def _program_flat(
        self, array: str, spec: ArraySpec, idx: np.ndarray, counts: np.ndarray, pulse: Pulse
    ) -> ProgramResult:
        max_count = int(counts.max()) if counts.size else 0
        if counts.size:
            self._models[array].apply_pulses(idx, pulse.amplitude_V, pulse.width_s, counts, self._t)
        duration = max_count * (pulse.width_s + self.timing.pulse_gap_s)
        self._t += duration
        return ProgramResult(array, pulse, int(counts.sum()), int(counts.size), max_count, duration)

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: np.ndarray,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        names = [arrays] if isinstance(arrays, str) else list(arrays)
        weights = [1.0] * len(names) if signs is None else [float(s) for s in signs]
        v = np.asarray(voltages_V, dtype=float)
        total: np.ndarray | None = None
        for name, weight in zip(names, weights, strict=True):
            self.spec(name)
            model = self._models[name]
            current, var = model.vmm(v, direction, self._t)
            if var is not None:
                current = current + np.sqrt(var) * model.read_rng.standard_normal(current.shape)
            total = weight * current if total is None else total + weight * current
        self._t += self.timing.read_time_s
        assert total is not None
        return total

    def iv_sweep(
        self,
        array: str,
        row: int,
        col: int,
        voltages_V: np.ndarray,
        compliance_A: float,
        dwell_s: float = 1e-3,
    ) -> IVResult:
        """Each point sources ``V`` for ``dwell_s``; in compliance the device sees only the voltage
        that draws ``compliance_A`` (so compliance also limits how far it switches)."""
        spec = self.spec(array)
        as_cells([(row, col)], spec)
        model = self._models[array]
        idx = np.array([row * spec.cols + col])
        v_src = np.asarray(voltages_V, dtype=float)
        v_meas = np.empty_like(v_src)
        i_meas = np.empty_like(v_src)
        times = np.empty_like(v_src)
        hit = np.zeros(v_src.shape, dtype=bool)
        self.output_on = True  # compliance_A is in force from the first point
        try:
            for k, v in enumerate(v_src):
                g = float(model.conductance(self._t, idx)[0])
                v_dev = v
                if abs(model.device_current(g, v)) > compliance_A:
                    v_dev = float(np.sign(v)) * model.compliance_voltage(g, compliance_A)
                    hit[k] = True
                model.apply_pulses(idx, v_dev, dwell_s, 1, self._t)
                self._t += dwell_s
                g = float(model.conductance(self._t, idx)[0])
                i = model.device_current(g, v_dev)
                if abs(i) > compliance_A:
                    i = float(np.sign(v)) * compliance_A
                    v_dev = float(np.sign(v)) * model.compliance_voltage(g, compliance_A)
                    hit[k] = True
                i_meas[k] = model.noisy(i)
                v_meas[k] = v_dev
                times[k] = self._t
        finally:
            self.output_on = False
        return IVResult(array, int(row), int(col), v_meas, i_meas, times, float(compliance_A), hit)

    def delay(self, seconds: float) -> None:
        self._t += float(seconds)

    def safe_state(self) -> None:
        self.output_on = False
        self.safe_state_calls += 1

    def close(self) -> None:
        self.closed = True
