"""The twin's array physics: one :class:`TwinArray` holds the state of every device of a crossbar.

Everything is vectorised numpy over the whole array or over a flat index of cells; there is no
Python loop per cell. Randomness is seeded per array from ``(seed, array name)`` and split into
three independent streams: fabrication (device-to-device spread, stuck cells), programming
(cycle-to-cycle variability) and reading (read noise). The same seed therefore gives
bit-identical devices and trajectories, and extra reads never change how a device programs.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from hil.types import ArraySpec
from sim_backend import physics
from sim_backend.preset import DevicePreset

#: Flat cell index: ``None`` addresses every cell.
FlatIndex = np.ndarray | None

#: Relative drift below which a cached conductance matrix stays valid (retention only).
_CACHE_DRIFT_TOLERANCE = 1e-6


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
        shape = spec.shape
        lo_nom, hi_nom = preset.g_range_S(spec.device_area_m2)
        # Fabrication draws happen in a fixed order whatever the parameter values, so changing
        # one spread leaves the others (and the stuck pattern) as they were.
        z_lo = fab.standard_normal(shape)
        z_span = fab.standard_normal(shape)
        u_stuck = fab.random(shape)
        u_stuck_on = fab.random(shape)
        self.g_lo = np.maximum(lo_nom * (1.0 + preset.d2d_sigma * z_lo), 0.05 * lo_nom)
        span_nom = hi_nom - lo_nom
        self.g_span = np.maximum(span_nom * (1.0 + preset.d2d_range_sigma * z_span), 0.05 * span_nom)
        self.stuck = u_stuck < preset.stuck_fraction
        self.stuck_x = np.where(u_stuck_on < preset.stuck_on_fraction, 1.0, 0.0)
        self.x = np.where(self.stuck, self.stuck_x, 0.0)
        self.formed = np.full(shape, preset.forming_free, dtype=bool)
        self.t_prog: np.ndarray | None = None if preset.retention_tau_s is None else np.zeros(shape)
        self._cache: tuple[float, np.ndarray] | None = None

    # ------------------------------------------------------------------ state
    def _flat(self, a: np.ndarray, idx: FlatIndex) -> np.ndarray:
        flat = a.reshape(-1)
        return flat if idx is None else flat[idx]

    def state(self, t: float, idx: FlatIndex = None) -> np.ndarray:
        """Normalised state ``x`` at simulated time ``t`` (s), retention drift applied (flat)."""
        x = self._flat(self.x, idx)
        if self.t_prog is None:
            return x.copy()
        elapsed = t - self._flat(self.t_prog, idx)
        drifted = physics.retention_decay(x, elapsed, self.preset.retention_tau_s)
        return np.where(self._flat(self.stuck, idx), x, drifted)

    def conductance(self, t: float, idx: FlatIndex = None) -> np.ndarray:
        """True conductance (S) at ``t``, without read noise (flat over ``idx``)."""
        g = self._flat(self.g_lo, idx) + self.state(t, idx) * self._flat(self.g_span, idx)
        formed = self._flat(self.formed, idx)
        if formed.all():
            return g
        return np.where(formed, g, self.preset.pristine_conductance_ratio * self._flat(self.g_lo, idx))

    def conductance_matrix(self, t: float) -> np.ndarray:
        """The whole ``(rows, cols)`` conductance matrix (S), cached between programming operations."""
        tau = self.preset.retention_tau_s
        if self._cache is not None:
            t_cached, g = self._cache
            if tau is None or abs(t - t_cached) <= _CACHE_DRIFT_TOLERANCE * tau:
                return g
        g = self.conductance(t).reshape(self.spec.shape)
        g.flags.writeable = False
        self._cache = (t, g)
        return g

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
        p = self.preset
        m = np.broadcast_to(np.asarray(count, dtype=float), self._flat(self.x, idx).shape)
        if abs(amplitude_V) >= p.forming_voltage_V and not self.formed.all():
            self._form(idx, m > 0)
        polarity, s = physics.step_strength(p, amplitude_V, width_s)
        if polarity == "none" or s == 0.0:
            return
        x0 = self.state(t, idx)
        n = m * s
        if p.c2c_sigma_over_mu > 0:
            # cycle-to-cycle variability of the step: count * s nominal steps become
            # count * s * (1 + sigma/mu * z / sqrt(count)), one draw per cell
            z = self.prog_rng.standard_normal(x0.shape)
            n = n * (1.0 + p.c2c_sigma_over_mu * z / np.sqrt(np.maximum(m, 1.0)))
        if polarity == "set":
            x_new = physics.potentiate(x0, n, p.nonlinearity_potentiation, p.n_states)
        else:
            x_new = physics.depress(x0, n, p.nonlinearity_depression, p.n_states)
        frozen = self._flat(self.stuck, idx) | ~self._flat(self.formed, idx) | (m == 0)
        x_new = np.where(frozen, self._flat(self.x, idx), x_new)
        self._store(idx, x_new, t, ~frozen)

    def _store(self, idx: FlatIndex, x_new: np.ndarray, t: float, touched: np.ndarray) -> None:
        flat_x = self.x.reshape(-1)
        if idx is None:
            flat_x[:] = x_new
        else:
            flat_x[idx] = x_new
        if self.t_prog is not None:
            flat_t = self.t_prog.reshape(-1)
            if idx is None:
                flat_t[touched] = t
            else:
                flat_t[idx[touched]] = t
        self._cache = None

    def _form(self, idx: FlatIndex, hit: np.ndarray) -> None:
        flat = self.formed.reshape(-1)
        if idx is None:
            flat[hit] = True
        else:
            flat[idx[hit]] = True
        self._cache = None

    # ------------------------------------------------------------------ measurement
    def read_current(self, idx: FlatIndex, voltage_V: float, t: float) -> np.ndarray:
        """Measured current (A) at ``voltage_V`` of the cells ``idx``, read noise included (flat)."""
        p = self.preset
        i = self.conductance(t, idx) * float(physics.iv_shape(voltage_V, p.read_reference_V, p.iv_v0_V))
        if p.read_noise_rel > 0:
            i = i * (1.0 + p.read_noise_rel * self.read_rng.standard_normal(i.shape))
        return i

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
        return current * (1.0 + p.read_noise_rel * float(self.read_rng.standard_normal()))
