"""The direct twin backend: the backend interface implemented on the simulated arrays.

It has every capability a crossbar could have: native VMM, fully parallel programming, pulse
trains with reads in one call, parallel reads, and a simulated clock that ``delay`` advances
instantly (so retention runs of months take milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from hil.backend import Backend, coincidence_counts
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
from sim_backend import kernels, physics
from sim_backend.array_model import TwinArray, TwinTiming
from sim_backend.devices import SimArray, make_array
from sim_backend.preset import DevicePreset

#: No read-noise variance (for the kernels; never written).
_NO_NOISE = np.zeros(0, dtype=np.float32)
_NO_NOISE_2D = np.zeros((0, 0), dtype=np.float32)
_NO_DRAWS = np.zeros(0)


@dataclass
class _IVGroup:
    """Members of a read-out that share one I-V shape, combined: ``C = sum s_a G_a`` (S) and,
    with read noise, ``S2 = sum sigma_a^2 G_a^2`` (S^2)."""

    read_reference_V: float
    iv_v0_V: float | None
    members: list[tuple[str, float]]
    combined: np.ndarray
    noise_sq: np.ndarray | None


@dataclass
class _FusedReadout:
    """A cached multi-array read-out, kept in step with its arrays' incremental changes.

    ``combined`` is float64; the noise variance matrix is float32 (it only scales the noise)."""

    t_built: float
    groups: list[_IVGroup]
    versions: dict[str, int] = field(default_factory=dict)
    #: simulated time (s) until which retention drift keeps the cache within tolerance
    valid_until: float = math.inf
    #: per distinct array: its model and the (group, sign) entries it contributes to
    followers: list[tuple[str, TwinArray, list[tuple[_IVGroup, float]]]] = field(default_factory=list)


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
        self._models: dict[str, SimArray] = {
            a.name: make_array(a, overrides.get(a.name, preset), self.seed) for a in arrays
        }
        kernels.warm_up()  # compiled kernels loaded now, not inside the first measurement
        self._fused: dict[tuple[tuple[str, ...], tuple[float, ...]], _FusedReadout] = {}
        self._all_cells: dict[str, np.ndarray] = {}
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

    def model(self, array: str) -> SimArray:
        """The simulated array behind ``array`` (for tests and the wire-level emulators)."""
        self.spec(array)
        return self._models[array]

    def now(self) -> float:
        return self._t

    def _index(self, array: str, cells: CellsLike) -> tuple[ArraySpec, np.ndarray, np.ndarray | None]:
        spec = self.spec(array)
        if cells is None:
            every = self._all_cells.get(array)
            if every is None:
                every = as_cells(None, spec)
                every.flags.writeable = False
                self._all_cells[array] = every
            return spec, every, None
        arr = as_cells(cells, spec)
        return spec, arr, arr[:, 0] * spec.cols + arr[:, 1]

    # ------------------------------------------------------------------ operations
    def read(self, array: str, cells: CellsLike = None, voltage_V: float = DEFAULT_READ_VOLTAGE_V) -> Readout:
        spec, arr, idx = self._index(array, cells)
        t = self._t
        model = self._models[array]
        if isinstance(model, TwinArray):
            current, conductance = model.read_both(idx, voltage_V, t)
        else:
            current = model.read_current(idx, voltage_V, t)
            conductance = current / voltage_V
        n_reads = spec.rows if idx is None else len(arr)
        self._t += n_reads * self.timing.read_time_s
        if idx is None:
            current, conductance = current.reshape(spec.shape), conductance.reshape(spec.shape)
        return Readout(array, arr, float(voltage_V), conductance, current, t)

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

    def program_cells(self, array: str, cells: CellsLike, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        """:meth:`program` of a few cells without the count matrix (the same physics and draws:
        the cells are taken in row-major order, those with no pulse skipped)."""
        spec, _, idx = self._index(array, cells)
        n = np.asarray(counts, dtype=np.int64).reshape(-1)
        if idx is None:
            idx = np.arange(spec.rows * spec.cols)
        keep = n > 0
        idx, n = idx[keep], n[keep]
        if idx.size > 1 and np.any(idx[1:] < idx[:-1]):
            order = np.argsort(idx, kind="stable")
            idx, n = idx[order], n[order]
        return self._program_flat(array, spec, idx, n, pulse)

    def program_outer(self, array: str, r: np.ndarray, c: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Outer-product update touching only the cells that receive pulses.

        ``count_ij = rint(r_i c_j)`` is non-zero only where ``r_i c_j > 0.5``; with the columns
        sorted by ``c``, each row's candidates are a prefix found by bisection, so the work is
        proportional to the cells programmed rather than to the array. Counts and cell order
        (row-major) are those of the dense outer product.
        """
        spec = self.spec(array)
        idx, counts, total, largest = kernels.active.outer_counts(
            np.asarray(r, dtype=float), np.asarray(c, dtype=float), spec.cols
        )
        return self._program_flat(array, spec, idx, counts, pulse, (total, largest))

    def program_streams(self, array: str, rows: np.ndarray, cols: np.ndarray, pulse: Pulse) -> ProgramResult:
        """Pulse-coincidence update: the coincidence counts of the rows and columns that fire at
        all (one small float32 matrix product), then the programming kernel on the cells with a
        count, in row-major order: the same physics and draws as :meth:`program_cells` of those
        counts. The update lasts ``bit_length`` slots (every slot is driven, coincident or not)."""
        spec = self.spec(array)
        r = np.asarray(rows, dtype=bool)
        c = np.asarray(cols, dtype=bool)
        ar, ac = np.flatnonzero(r.any(axis=1)), np.flatnonzero(c.any(axis=1))
        if ar.size and ac.size:
            sub = coincidence_counts(r[ar], c[ac])
            nr, nc = np.nonzero(sub)
            idx, counts = ar[nr] * spec.cols + ac[nc], sub[nr, nc]
        else:
            idx = counts = np.zeros(0, dtype=np.int64)
        total, largest = (int(counts.sum()), int(counts.max())) if counts.size else (0, 0)
        result = self._program_flat(array, spec, idx, counts, pulse, (total, largest))
        # the streams run their whole length whatever the largest coincidence count
        extra = (r.shape[1] - largest) * (pulse.width_s + self.timing.pulse_gap_s)
        self._t += extra
        return ProgramResult(
            array, pulse, result.pulses_applied, result.cells_programmed, result.max_count,
            result.duration_s + extra,
        )  # fmt: skip

    def _program_flat(
        self, array: str, spec: ArraySpec, idx: np.ndarray, counts: np.ndarray, pulse: Pulse,
        totals: tuple[int, int] | None = None,
    ) -> ProgramResult:  # fmt: skip
        """Program ``counts`` pulses on the flat cells ``idx``; ``totals``: the counts' sum and
        largest value, when the caller has them."""
        if totals is None:
            totals = (int(counts.sum()), int(counts.max())) if counts.size else (0, 0)
        total, max_count = totals
        if counts.size:
            self._models[array].apply_pulses(idx, pulse.amplitude_V, pulse.width_s, counts, self._t)
        duration = max_count * (pulse.width_s + self.timing.pulse_gap_s)
        self._t += duration
        return ProgramResult(array, pulse, int(total), int(counts.size), int(max_count), duration)

    def vmm(
        self,
        arrays: str | Sequence[str],
        voltages_V: np.ndarray,
        direction: Direction = "forward",
        signs: Sequence[float] | None = None,
    ) -> np.ndarray:
        """Native VMM of one array or several summed with signs (a differential read-out).

        ``I = sum_a s_a f_a(V) @ G_a`` (``G_a.T`` backward), with ``f`` the device I-V shape. The
        read noise of every device adds in quadrature, ``var = sum_a sigma_a^2 f_a(V)^2 @ G_a^2``,
        and is drawn once per sensed line (from the first array's read stream). The signed sum
        of the arrays' conductance matrices is cached and follows programming incrementally, and
        a mostly-zero 1-D drive only multiplies its non-zero rows, so a read-out costs one
        (sparse) matrix-vector product whatever the number of arrays.
        """
        names = (arrays,) if isinstance(arrays, str) else tuple(arrays)
        weights = (1.0,) * len(names) if signs is None else tuple(float(s) for s in signs)
        if len(weights) != len(names):
            raise ValueError(f"signs: {len(weights)} given for {len(names)} arrays")
        v = np.asarray(voltages_V, dtype=float)
        if (names, weights) not in self._fused:
            for name in names:
                self.spec(name)
            if not all(isinstance(self._models[n], TwinArray) for n in names):
                return self._vmm_per_array(names, weights, v, direction)
        fused = self._fused_readout(names, weights)
        if v.ndim == 1 and len(fused.groups) == 1:
            # one I-V shape and one drive vector: the read-out and its noise in one compiled pass
            group = fused.groups[0]
            noise_sq = group.noise_sq
            n_out = group.combined.shape[1 if direction == "forward" else 0]
            draws = _NO_DRAWS
            if noise_sq is not None:
                draws = _synapse_array(self._models[names[0]]).read_normals.take(n_out)
            sensed = kernels.active.vmm_noisy(
                v, group.combined, _NO_NOISE_2D if noise_sq is None else noise_sq, direction == "forward",
                group.read_reference_V, 0.0 if group.iv_v0_V is None else group.iv_v0_V, draws,
            )  # fmt: skip
            self._t += self.timing.read_time_s
            return sensed
        current: np.ndarray | None = None
        var: np.ndarray | None = None
        for group in fused.groups:
            c_part, v_part = _multiply(v, group, direction)
            current = c_part if current is None else current + c_part
            if v_part is not None:
                var = v_part if var is None else var + v_part
        assert current is not None
        if var is not None:
            draws = _synapse_array(self._models[names[0]]).read_normals.take(current.size)
            current = current + np.sqrt(var.astype(float)) * draws.reshape(current.shape)
        self._t += self.timing.read_time_s
        return current

    def _vmm_per_array(
        self, names: tuple[str, ...], weights: tuple[float, ...], v: np.ndarray, direction: Direction
    ) -> np.ndarray:
        """Read-out of arrays whose devices have their own I-V (NDR neurons): each array's
        ``vmm`` with its read noise, summed with the signs."""
        total: np.ndarray | None = None
        for name, weight in zip(names, weights, strict=True):
            model = self._models[name]
            current, var = model.vmm(v, direction, self._t)
            if var is not None:
                current = current + np.sqrt(var) * model.read_rng.standard_normal(current.shape)
            total = weight * current if total is None else total + weight * current
        self._t += self.timing.read_time_s
        assert total is not None
        return total

    def _fused_readout(self, names: tuple[str, ...], signs: tuple[float, ...]) -> _FusedReadout:
        """The cached signed sum of ``names``' conductances, brought up to date (S)."""
        key = (names, signs)
        t = self._t
        entry = self._fused.get(key)
        if entry is not None and entry.t_built <= t <= entry.valid_until and self._catch_up(entry):
            return entry
        entry = self._build_fused(names, signs)
        self._fused[key] = entry
        return entry

    def _build_fused(self, names: tuple[str, ...], signs: tuple[float, ...]) -> _FusedReadout:
        t = self._t
        groups: dict[tuple[float, float | None], _IVGroup] = {}
        for name, sign in zip(names, signs, strict=True):
            model = self._models[name]
            p = model.preset
            g = model.conductance_matrix(t)
            group = groups.get((p.read_reference_V, p.iv_v0_V))
            if group is None:
                group = _IVGroup(p.read_reference_V, p.iv_v0_V, [], np.zeros(g.shape), None)
                groups[(p.read_reference_V, p.iv_v0_V)] = group
            group.members.append((name, sign))
            group.combined += sign * g
            if p.read_noise_rel > 0:
                # the noise variance needs no more than single precision
                sq = ((p.read_noise_rel**2) * (g * g)).astype(np.float32)
                group.noise_sq = sq if group.noise_sq is None else group.noise_sq + sq
        # only arrays of synapses are fused (vmm checked that every one is a TwinArray)
        synapses = {n: _synapse_array(self._models[n]) for n in names}
        versions = {n: model.version for n, model in synapses.items()}
        entry = _FusedReadout(t, list(groups.values()), versions)
        for name, model in synapses.items():
            targets = [(g, sign) for g in entry.groups for member, sign in g.members if member == name]
            entry.followers.append((name, model, targets))
            entry.valid_until = min(entry.valid_until, model.cache_valid_until(t))
        return entry

    def _catch_up(self, entry: _FusedReadout) -> bool:
        """Apply the arrays' incremental changes since ``entry`` was synced; False: rebuild."""
        for name, model, targets in entry.followers:
            have = entry.versions[name]
            behind = model.version - have
            if behind == 0:
                continue
            changes = model.changes
            pending = changes[-behind:] if 0 < behind <= len(changes) else []
            if not pending or pending[0][0] != have + 1 or pending[-1][0] != model.version:
                return False
            rel2 = model.preset.read_noise_rel**2
            for group, sign in targets:
                flat = group.combined.reshape(-1)
                flat_sq = _NO_NOISE if group.noise_sq is None or rel2 == 0 else group.noise_sq.reshape(-1)
                for _, idx, g_before, g_after in pending:
                    kernels.active.apply_changes(flat, flat_sq, idx, g_before, g_after, sign, rel2)
            entry.versions[name] = model.version
        return True

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

    def safe_state(self) -> SafeStateReport:
        self.output_on = False
        self.safe_state_calls += 1
        return SafeStateReport("off", "open", {"twin": "simulated outputs off, no routes"})

    def close(self) -> None:
        self.closed = True


def _synapse_array(model: SimArray) -> TwinArray:
    """``model`` as the synapse array a fused read-out follows (never an NDR neuron array)."""
    assert isinstance(model, TwinArray), "a fused read-out follows arrays of synapses only"
    return model


def _multiply(v: np.ndarray, group: _IVGroup, direction: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``f(v) @ C`` (forward) or ``f(v) @ C.T`` (backward), and the same with ``f(v)**2`` and the
    noise matrix. A 1-D drive is one compiled pass (:func:`sim_backend.kernels.vmm_vector`) that
    only touches its non-zero lines (``f(0) = 0``)."""
    combined, noise_sq = group.combined, group.noise_sq
    if v.ndim == 1:
        cur, var1 = kernels.active.vmm_vector(
            v, combined, _NO_NOISE_2D if noise_sq is None else noise_sq, direction == "forward",
            group.read_reference_V, 0.0 if group.iv_v0_V is None else group.iv_v0_V,
        )  # fmt: skip
        return cur, None if noise_sq is None else var1
    f = physics.iv_shape(v, group.read_reference_V, group.iv_v0_V)
    mat = combined if direction == "forward" else combined.T
    cur = f @ mat
    var: np.ndarray | None = None
    if noise_sq is not None:
        sq = noise_sq if direction == "forward" else noise_sq.T
        var = (f * f).astype(np.float32) @ sq
    return cur, var


def sparse_outer_counts(r: np.ndarray, c: np.ndarray, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat row-major indices and counts of the non-zero entries of ``rint(outer(r, c))``.

    Equal to ``idx = flatnonzero(rint(outer(r, c)))`` and its counts, without building the
    whole outer product: a count is non-zero only where ``r_i c_j > 0.5``. Rows and columns that
    cannot reach it are dropped; when the rest is sparse, each row's candidates are found by
    bisection in the columns sorted by ``c``. ``r`` and ``c`` are non-negative.
    """
    empty = np.zeros(0, dtype=np.int64)
    r_max = float(r.max()) if r.size else 0.0
    c_max = float(c.max()) if c.size else 0.0
    if not (r_max > 0.0 and c_max > 0.0):
        return empty, empty
    margin = 1.0 - 1e-9  # generous candidate bounds; exact counts are filtered below
    rows = np.flatnonzero(r * c_max > 0.5 * margin)
    cols = np.flatnonzero(c * r_max > 0.5 * margin)
    if rows.size == 0 or cols.size == 0:
        return empty, empty
    r_rows = r[rows]
    if rows.size * cols.size <= 4096:
        sub = np.rint(np.multiply.outer(r_rows, c[cols]))
        nr, nc = np.nonzero(sub)
        return rows[nr] * n_cols + cols[nc], sub[nr, nc].astype(np.int64)
    order = np.argsort(-c[cols])
    c_desc = c[cols[order]]
    k = np.searchsorted(-c_desc, -(0.5 / r_rows) * margin, side="right")
    total = int(k.sum())
    if total > 0.3 * rows.size * cols.size:
        sub = np.rint(np.multiply.outer(r_rows, c[cols]))
        nr, nc = np.nonzero(sub)
        return rows[nr] * n_cols + cols[nc], sub[nr, nc].astype(np.int64)
    keep = k > 0
    rows, k, r_rows = rows[keep], k[keep], r_rows[keep]
    starts = np.cumsum(k) - k
    col = cols[order][np.arange(total) - np.repeat(starts, k)]
    counts = np.rint(np.repeat(r_rows, k) * c[col]).astype(np.int64)
    nz = counts > 0
    flat = np.repeat(rows, k)[nz] * n_cols + col[nz]
    counts = counts[nz]
    # row-major order (as the dense product gives): sort keys packing index and count
    if counts.size and counts.max() < 2**20 and flat.max() < 2**42:
        keys = np.sort((flat << 20) | counts)
        return keys >> 20, keys & (2**20 - 1)
    sort = np.argsort(flat)
    return flat[sort], counts[sort]
