"""The twin's array physics: one :class:`TwinArray` holds the state of every device of a crossbar.

Everything is vectorised numpy over the whole array or over a flat index of cells; there is no
Python loop per cell. Randomness is seeded per array from ``(seed, array name)`` and split into
three independent streams: fabrication (device-to-device spread, stuck cells), programming
(cycle-to-cycle variability) and reading (read noise). The same seed therefore gives
bit-identical devices and trajectories, and extra reads never change how a device programs.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from hil.types import ArraySpec
from sim_backend import kernels, physics
from sim_backend.kernels import NormalStream
from sim_backend.preset import DevicePreset

#: Flat cell index: ``None`` addresses every cell.
FlatIndex = np.ndarray | None

#: Relative drift below which a cached conductance matrix stays valid (retention only).
_CACHE_DRIFT_TOLERANCE = 1e-6

#: An empty float array: no draws, no cache, no retention clock (for the kernels; never written).
_NO_DRAWS = np.zeros(0)

#: A pulse shape's physics for the programming kernel: ``(tau_s, steps per pulse, set polarity,
#: sigma/mu, nonlinearity, states, retention)``.
_KernelArgs = tuple[float, float, bool, float, float, float, bool]

#: Incremental changes remembered for fused read-out caches (older ones force a rebuild).
_MAX_CHANGES = 64


@dataclass(frozen=True)
class TwinTiming:
    """How long operations take on the twin's simulated clock (s)."""

    read_time_s: float = 1e-4
    pulse_gap_s: float = 1e-6


def _streams(seed: int, name: str) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode())])
    fab, prog, read = seq.spawn(3)
    return np.random.default_rng(fab), np.random.default_rng(prog), np.random.default_rng(read)


class TwinArray:
    """State and physics of one simulated crossbar array.

    Attributes:
        spec: the array's shape and device area.
        preset: the device parameters.
        g_lo: ``(rows, cols)`` per-device Gmin (S), device-to-device spread included.
        g_span: ``(rows, cols)`` per-device Gmax - Gmin (S).
        x: ``(rows, cols)`` normalised state at the last programming of each cell.
        stuck: ``(rows, cols)`` cells that never switch.
        formed: ``(rows, cols)`` cells that have been formed (all, for a forming-free preset).
        t_prog: ``(rows, cols)`` simulated time of each cell's last programming (s), or None
            when the preset has no retention drift.
    """

    def __init__(self, spec: ArraySpec, preset: DevicePreset, seed: int = 0) -> None:
        self.spec = spec
        self.preset = preset
        fab, self.prog_rng, self.read_rng = _streams(seed, spec.name)
        #: every draw of the programming and read streams, in bulk and in the streams' order
        self.prog_normals = NormalStream(self.prog_rng)
        self.read_normals = NormalStream(self.read_rng)
        shape = spec.shape
        lo_nom, hi_nom = preset.g_range_S(spec.device_area_m2)
        # Fabrication draws happen in a fixed order whatever the parameter values, so changing
        # one spread leaves the others (and the stuck pattern) as they were.
        z_lo = fab.standard_normal(shape)
        z_span = fab.standard_normal(shape)
        u_stuck = fab.random(shape)
        u_stuck_on = fab.random(shape)
        #: one record per cell (see :data:`kernels.CELL_FIELDS`): a cell's state, clock, cached
        #: conductance and window share a cache line, so programming a scattered few hundred
        #: cells reads one line per cell instead of one per quantity
        self.cells = np.zeros(shape + (kernels.N_FIELDS,))
        #: cached conductances (S), valid at :attr:`_cache_t` (contiguous, for whole-array reads)
        self._g = np.zeros(shape)
        self._flat_records = self.cells.reshape(-1, kernels.N_FIELDS)
        self._flat_g = self._g.reshape(-1)
        #: the physics of each pulse shape as the programming kernel takes it
        self._kernel_args: dict[tuple[float, float], _KernelArgs | None] = {}
        span_nom = hi_nom - lo_nom
        self.cells[..., kernels.LO] = np.maximum(lo_nom * (1.0 + preset.d2d_sigma * z_lo), 0.05 * lo_nom)
        self.cells[..., kernels.SPAN] = np.maximum(
            span_nom * (1.0 + preset.d2d_range_sigma * z_span), 0.05 * span_nom
        )
        self.stuck = u_stuck < preset.stuck_fraction
        self._flat_stuck = self.stuck.reshape(-1)  # a view: wear marks cells stuck in place
        self.stuck_x = np.where(u_stuck_on < preset.stuck_on_fraction, 1.0, 0.0)
        self.cells[..., kernels.X] = np.where(self.stuck, self.stuck_x, 0.0)
        self.formed = np.full(shape, preset.forming_free, dtype=bool)
        #: every cell formed (kept by :meth:`_form`): programming then skips the forming checks
        self.all_formed = bool(self.formed.all())
        self._strengths: dict[tuple[float, float], tuple[str, float]] = {}
        #: simulated time of the cached conductances :attr:`_g`; None: no valid cache
        self._cache_t: float | None = None
        #: incremented on every change of state; with :attr:`changes` it lets fused read-out
        #: caches (see :class:`sim_backend.twin.TwinBackend`) follow the array incrementally
        self.version = 0
        #: the last incremental changes ``(version, flat idx, G before, G after)``; a change of
        #: the whole array (or of the formed state) clears it, so followers rebuild
        self.changes: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    # ------------------------------------------------------------------ state
    @property
    def x(self) -> np.ndarray:
        """``(rows, cols)`` normalised state at the last programming of each cell (a view)."""
        return self.cells[..., kernels.X]

    @property
    def g_lo(self) -> np.ndarray:
        """``(rows, cols)`` per-device Gmin (S), device-to-device spread included (a view)."""
        return self.cells[..., kernels.LO]

    @property
    def g_span(self) -> np.ndarray:
        """``(rows, cols)`` per-device Gmax - Gmin (S) (a view)."""
        return self.cells[..., kernels.SPAN]

    @property
    def t_prog(self) -> np.ndarray | None:
        """``(rows, cols)`` simulated time of each cell's last programming (s) (a view), or None
        when the preset has no retention drift."""
        return None if self.preset.retention_tau_s is None else self.cells[..., kernels.T]

    @property
    def _records(self) -> np.ndarray:
        """The cell records, flat: ``(rows * cols, fields)``."""
        return self.cells.reshape(-1, kernels.N_FIELDS)

    def _flat(self, a: np.ndarray, idx: FlatIndex) -> np.ndarray:
        flat = a.reshape(-1)
        return flat if idx is None else flat[idx]

    def state(self, t: float, idx: FlatIndex = None) -> np.ndarray:
        """Normalised state ``x`` at simulated time ``t`` (s), retention drift applied (flat)."""
        x = self._flat(self.x, idx)
        if self.t_prog is None:
            return x.copy()
        return self._drifted(x, self._flat(self.stuck, idx), t, idx)

    def conductance(self, t: float, idx: FlatIndex = None) -> np.ndarray:
        """True conductance (S) at ``t``, without read noise (flat over ``idx``)."""
        g = self._flat(self.g_lo, idx) + self.state(t, idx) * self._flat(self.g_span, idx)
        formed = self._flat(self.formed, idx)
        if formed.all():
            return g
        return np.where(formed, g, self.preset.pristine_conductance_ratio * self._flat(self.g_lo, idx))

    def cache_valid(self, t_cached: float, t: float) -> bool:
        """Whether conductances computed at ``t_cached`` still hold at ``t`` (retention drift only)."""
        tau = self.preset.retention_tau_s
        return tau is None or abs(t - t_cached) <= _CACHE_DRIFT_TOLERANCE * tau

    def cache_valid_until(self, t_cached: float) -> float:
        """Simulated time (s) up to which conductances computed at ``t_cached`` still hold."""
        tau = self.preset.retention_tau_s
        return math.inf if tau is None else t_cached + _CACHE_DRIFT_TOLERANCE * tau

    def conductance_matrix(self, t: float) -> np.ndarray:
        """The whole ``(rows, cols)`` conductance matrix (S), read-only.

        Cached: programming updates the cached entries of the cells it touched, and the whole
        matrix is recomputed once retention drift since it was computed could exceed a relative
        ``1e-6`` (never, without retention).
        """
        if self._cache_t is None or not self.cache_valid(self._cache_t, t):
            self._g[...] = self.conductance(t).reshape(self.spec.shape)
            self._cache_t = t
        view = self._g.view()
        view.flags.writeable = False
        return view

    # ------------------------------------------------------------------ programming
    def apply_pulses(
        self, idx: FlatIndex, amplitude_V: float, width_s: float, count: np.ndarray | int, t: float
    ) -> None:
        """Apply ``count`` identical pulses (per cell, or one number for all) to the cells ``idx``.

        The change is the closed form of :func:`physics.potentiate` / :func:`physics.depress`
        for ``n = count * s`` nominal steps. Cycle-to-cycle variability is one Gaussian draw
        ``z`` per cell on the step count, ``n * (1 + sigma/mu * z / sqrt(count))``: away from the
        bounds the change dG then has ``sigma/mu`` per pulse exactly as the paper models it
        (a Gaussian added to every dG, summed over ``count`` pulses), and a device pushed against
        a bound (the strong reset) stays at that bound instead of being scattered off it.
        Stuck and unformed cells do not change, except that an unformed cell forms under a
        pulse of at least the forming voltage.
        """
        if self.all_formed:
            if idx is not None and isinstance(count, np.ndarray) and count.shape == idx.shape:
                self._apply_to_formed(idx, amplitude_V, width_s, count, t)
                return
            if idx is not None and isinstance(count, int | np.integer):
                self._apply_to_formed(idx, amplitude_V, width_s, np.full(idx.shape, int(count)), t)
                return
            if idx is None and isinstance(count, int | np.integer) and count >= 1:
                self._apply_to_all(amplitude_V, width_s, int(count), t)
                return
        p = self.preset
        x_stored = self._flat(self.x, idx)
        if isinstance(count, np.ndarray) and count.shape == x_stored.shape:
            m = count.astype(float)
        else:
            m = np.broadcast_to(np.asarray(count, dtype=float), x_stored.shape)
        if abs(amplitude_V) >= p.forming_voltage_V and not self.formed.all():
            self._form(idx, m > 0)
        polarity, s = self._strength(amplitude_V, width_s)
        if polarity == "none" or s == 0.0:
            return
        stuck = self._flat(self.stuck, idx)
        formed = self._flat(self.formed, idx)
        x0 = self._drifted(x_stored, stuck, t, idx)  # the state at t, as :meth:`state` gives it
        x_new = self._stepped(x0, m, polarity, s)
        all_formed = bool(formed.all())
        frozen = (m == 0) | stuck
        if not all_formed:
            frozen |= ~formed
        any_frozen = bool(frozen.any())
        x_final = np.where(frozen, x_stored, x_new) if any_frozen else x_new
        if idx is None:
            self._store(None, x_final, t, ~frozen)
            return
        # conductances at t before and after (for the caches): a touched cell was just
        # programmed (no drift yet), a frozen one keeps its drifted state
        g_lo = self._records[idx, kernels.LO]
        span = self._records[idx, kernels.SPAN]
        g_before = g_lo + x0 * span
        g_after = g_lo + (np.where(frozen, x0, x_new) if any_frozen else x_new) * span
        if not all_formed:
            pristine = p.pristine_conductance_ratio * g_lo
            g_before = np.where(formed, g_before, pristine)
            g_after = np.where(formed, g_after, pristine)
        self._store(idx, x_final, t, None if not any_frozen else ~frozen, g_before, g_after)

    def _strength(self, amplitude_V: float, width_s: float) -> tuple[str, float]:
        """:func:`physics.step_strength` of this preset, remembered per pulse shape."""
        key = (float(amplitude_V), float(width_s))
        hit = self._strengths.get(key)
        if hit is None:
            hit = physics.step_strength(self.preset, amplitude_V, width_s)
            if len(self._strengths) < 256:
                self._strengths[key] = hit
        return hit

    def _apply_to_formed(
        self, idx: np.ndarray, amplitude_V: float, width_s: float, count: np.ndarray, t: float
    ) -> None:
        """:meth:`apply_pulses` for a list of cells of a fully formed array, one count per cell.

        The same physics and the same random draws as the general path, in one compiled pass
        (:func:`sim_backend.kernels.program_flat`): this is the update step of in-situ training,
        a few hundred cells at a time.
        """
        key = (amplitude_V, width_s)
        if key in self._kernel_args:
            shape = self._kernel_args[key]
        else:
            shape = self._pulse_kernel_args(amplitude_V, width_s)
            if len(self._kernel_args) < 256:
                self._kernel_args[key] = shape
        if shape is None:
            return
        tau, s, set_polarity, sigma, nu, n_states, has_t = shape
        z = self.prog_normals.take(idx.size) if sigma > 0 else _NO_DRAWS
        if self._cache_t is not None and not self.cache_valid(self._cache_t, t):
            self._cache_t = None
        g_before, g_after, _ = kernels.active.program_flat(
            idx, count.astype(np.int64, copy=False), self._flat_records, self._flat_g, self._flat_stuck, z,
            float(t), tau, s, set_polarity, sigma, nu, n_states, has_t, self._cache_t is not None,
        )  # fmt: skip
        self.version += 1
        self.changes.append((self.version, idx, g_before, g_after))
        if len(self.changes) > _MAX_CHANGES:
            del self.changes[0]

    def _apply_to_all(self, amplitude_V: float, width_s: float, count: int, t: float) -> None:
        """:meth:`apply_pulses` of ``count`` pulses on every cell of a fully formed array, in one
        compiled pass (:func:`sim_backend.kernels.program_all`); the cached conductances are
        then those at ``t``, and fused read-outs rebuild."""
        polarity, s = self._strength(amplitude_V, width_s)
        if polarity == "none" or s == 0.0:
            return
        p = self.preset
        n = self.spec.rows * self.spec.cols
        sigma, nu = float(p.c2c_sigma_over_mu), float(self._nu(polarity))
        z = self.prog_normals.take(n) if sigma > 0 else _NO_DRAWS
        an = kernels.step_factors(count, z, float(s), sigma, nu, float(p.n_states)) if sigma > 0 and nu else _NO_DRAWS
        tau = p.retention_tau_s
        kernels.active.program_all(
            self._records, self._g.reshape(-1), self.stuck.reshape(-1), count, z, float(t),
            math.inf if tau is None else float(tau), float(s), polarity == "set", sigma, nu, float(p.n_states),
            tau is not None, an,
        )  # fmt: skip
        self.version += 1
        self.changes.clear()
        self._cache_t = float(t)

    def _pulse_kernel_args(self, amplitude_V: float, width_s: float) -> _KernelArgs | None:
        """A pulse shape's physics as :func:`kernels.program_flat` takes it, or None when the
        pulse does nothing."""
        polarity, s = self._strength(amplitude_V, width_s)
        if polarity == "none" or s == 0.0:
            return None
        p = self.preset
        tau = p.retention_tau_s
        return (
            math.inf if tau is None else float(tau), float(s), polarity == "set", float(p.c2c_sigma_over_mu),
            float(self._nu(polarity)), float(p.n_states), tau is not None,
        )  # fmt: skip

    def _nu(self, polarity: str) -> float:
        p = self.preset
        return p.nonlinearity_potentiation if polarity == "set" else p.nonlinearity_depression

    def _stepped(self, x0: np.ndarray, m: np.ndarray, polarity: str, s: float) -> np.ndarray:
        """States after ``m`` pulses (per cell) of ``s`` nominal steps each, from ``x0``.

        Cycle-to-cycle variability of the step: ``m * s`` nominal steps become
        ``m * s * (1 + sigma/mu * z / sqrt(m))``, one Gaussian draw ``z`` per cell.
        """
        p = self.preset
        n = m * s
        if p.c2c_sigma_over_mu > 0:
            z = self.prog_normals.take(x0.size).reshape(x0.shape)
            n = n * (1.0 + p.c2c_sigma_over_mu * z / np.sqrt(np.maximum(m, 1.0)))
        if polarity == "set":
            return physics.potentiate(x0, n, p.nonlinearity_potentiation, p.n_states)
        return physics.depress(x0, n, p.nonlinearity_depression, p.n_states)

    def _drifted(self, x: np.ndarray, stuck: np.ndarray | None, t: float, idx: FlatIndex) -> np.ndarray:
        """Stored states ``x`` of the cells ``idx`` drifted to ``t`` (stuck cells do not drift)."""
        if self.t_prog is None:
            return x
        elapsed = t - self._flat(self.t_prog, idx)
        drifted = physics.retention_decay(x, elapsed, self.preset.retention_tau_s)
        return np.where(stuck, x, drifted) if stuck is not None and stuck.any() else drifted

    def _store(
        self,
        idx: FlatIndex,
        x_new: np.ndarray,
        t: float,
        touched: np.ndarray | None,
        g_before: np.ndarray | None = None,
        g_after: np.ndarray | None = None,
    ) -> None:
        """Commit new states; a change of some cells updates the caches in place, of all clears them."""
        rec = self._records
        if idx is None:
            rec[:, kernels.X] = x_new
        else:
            rec[idx, kernels.X] = x_new
        if self.t_prog is not None:
            if idx is None:
                rec[slice(None) if touched is None else touched, kernels.T] = t
            else:
                rec[idx if touched is None else idx[touched], kernels.T] = t
        self.version += 1
        if idx is None or g_before is None or g_after is None:
            self._invalidate()
            return
        if self._cache_t is not None:
            if self.cache_valid(self._cache_t, t):
                # the touched cells were just programmed: their value at t is exact, and the
                # others stay within the drift tolerance of the cache's time
                self._g.reshape(-1)[idx] = g_after
            else:
                self._cache_t = None
        self.changes.append((self.version, idx, g_before, g_after))
        if len(self.changes) > _MAX_CHANGES:
            del self.changes[0]

    def _invalidate(self) -> None:
        """Forget every cached conductance (a change of the whole array)."""
        self._cache_t = None
        self.changes.clear()

    def _form(self, idx: FlatIndex, hit: np.ndarray) -> None:
        flat = self.formed.reshape(-1)
        if idx is None:
            flat[hit] = True
        else:
            flat[idx[hit]] = True
        self.all_formed = bool(self.formed.all())
        self.version += 1
        self._invalidate()

    # ------------------------------------------------------------------ measurement
    def read_current(self, idx: FlatIndex, voltage_V: float, t: float) -> np.ndarray:
        """Measured current (A) at ``voltage_V`` of the cells ``idx``, read noise included (flat)."""
        return self.read_both(idx, voltage_V, t)[0]

    def read_both(self, idx: FlatIndex, voltage_V: float, t: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`read_current` and the conductance it gives, ``I / V`` (S), in one pass (flat)."""
        p = self.preset
        if idx is None:
            self.conductance_matrix(t)  # brings the cached conductances up to date
            g = self._g.reshape(-1)
        else:
            g = self.conductance(t, idx)
        f = float(physics.iv_shape(voltage_V, p.read_reference_V, p.iv_v0_V))
        rel = float(p.read_noise_rel)
        z = self.read_normals.take(g.size) if rel > 0 else _NO_DRAWS
        return kernels.active.read_cells(g, f, rel, z, float(voltage_V))

    def vmm(self, voltages_V: np.ndarray, direction: str, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Noise-free sensed currents (A) and, if the preset has read noise, their variance (A^2).

        ``I = f(V) @ G`` (forward) or ``f(V) @ G.T`` (backward); the variance of the read noise
        of independent devices adds in quadrature: ``sigma^2 * f(V)^2 @ G^2``.
        """
        p = self.preset
        g = self.conductance_matrix(t)
        gm = g if direction == "forward" else g.T
        f = physics.iv_shape(voltages_V, p.read_reference_V, p.iv_v0_V)
        current = f @ gm
        var = None
        if p.read_noise_rel > 0:
            var = (p.read_noise_rel**2) * ((f * f) @ (gm * gm))
        return current, var

    def compliance_voltage(self, g: float, compliance_A: float) -> float:
        """Voltage (V) across a device of conductance ``g`` (S) that draws exactly ``compliance_A``."""
        p = self.preset
        return float(physics.iv_shape_inverse(compliance_A / g, p.read_reference_V, p.iv_v0_V))

    def device_current(self, g: float, voltage_V: float) -> float:
        p = self.preset
        return float(g * physics.iv_shape(voltage_V, p.read_reference_V, p.iv_v0_V))

    def noisy(self, current: float) -> float:
        p = self.preset
        if p.read_noise_rel == 0:
            return current
        return current * (1.0 + p.read_noise_rel * float(self.read_normals.take(1)[0]))
