"""The network on the backend's arrays: calibration, VMM passes, the update, occasional reset,
write-verify, and the programming effort they cost.

Every operation is a backend call (``vmm``, ``read``, ``program``, ``program_cells``,
``program_outer``, ``program_streams``, ``pulse``); the host only computes pulse counts. Conductances are in S,
weights in weight units (``W = a * sum_s s G``, ``a`` the layer's weight per siemens).

- Calibration (:meth:`ArrayNetwork.calibrate`): each array is strongly reset and read (Gmin per
  cell), given ``states`` pulses and read (Gmax per cell), and reset again. The median window
  over the number of states is the array's ``step``; ``a = w_max / mean median window of G``.
- Update (:meth:`ArrayNetwork.update`): ``dW = -lr delta x^T``; the device that must grow (+ for
  dW > 0, - for dW < 0) receives ``|dW| / (a step)`` potentiation pulses, rounded
  (``pulse_mapping=round``: with inputs >= 0 one ``program_outer`` per array, the crossbar's
  pulse-coincidence outer product) or stochastically rounded (one ``program_cells`` per array
  listing only the pulsed cells, row-major), or (``pulse_mapping=coincidence``) the coincidences
  of stochastic row and column pulse streams of ``bit_length`` slots, one ``program_streams`` per
  array (two with signed inputs). Fine tuning may map its g pair's updates its own way
  (``fine_pulse_mapping``). Depression is never used for updates.
- Occasional reset (:meth:`ArrayNetwork.check_saturation`, Burr et al. 2015): a pair with one
  device above ``reset_level`` of its window (and the other above ``1 - reset_level``) gets a
  strong reset of both devices, and its net conductance is re-programmed onto one device by
  write-verify.
- Write-verify (:meth:`ArrayNetwork.write_verify_pair`, :meth:`ArrayNetwork.write_verify_devices`):
  read, potentiate by :func:`verify_pulses` (the rule of :func:`protocols.write_verify.correction_pulses`),
  repeat ``verify_iterations`` times.
- Effort: every programming operation that counts goes through one path,
  :meth:`ProgramStats.add`, per array and epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hil.backend import coincidence_counts
from hil.errors import ConfigError
from hil.protocol import RunContext
from hil.types import ProgramResult, Pulse
from protocols.training.coincidence import draw_streams
from protocols.training.counts import host_counts
from protocols.training.layout import SIGNS, Layer, layers_of
from protocols.training.params import HybridTrainingParams
from protocols.training.phase import active_pair
from protocols.write_verify import correction_pulses


@dataclass
class ProgramStats:
    """Programming effort of one array, accumulated over an epoch.

    Attributes:
        calls: programming calls (updates, write-verify passes, initial weights).
        pulses: pulses applied, strong resets included.
        cells: cells that received a programming pulse (strong resets not included).
        resets: cells strongly reset.
        energy_J: estimated pulse energy (J).
        time_parallel_s: pulse time with every cell of a call pulsed in parallel (s).
        time_serial_s: pulse time with one pulse at a time (s).
    """

    calls: int = 0
    pulses: int = 0
    cells: int = 0
    resets: int = 0
    energy_J: float = 0.0
    time_parallel_s: float = 0.0
    time_serial_s: float = 0.0

    def add(self, result: ProgramResult, energy_J: float, reset: bool = False) -> None:
        """Account one operation: a programming call's ``result``, or (``reset``) a strong reset
        described as one (its cells count as reset, not as programmed; it is no programming call).
        Times are pulse counts times the result's pulse width."""
        if reset:
            self.resets += result.cells_programmed
        else:
            self.calls += 1
            self.cells += result.cells_programmed
        self.pulses += result.pulses_applied
        self.energy_J += energy_J
        self.time_parallel_s += result.max_count * result.pulse.width_s
        self.time_serial_s += result.pulses_applied * result.pulse.width_s


def reset_result(array: str, cells: int, pulse: Pulse, count: int) -> ProgramResult:
    """A strong reset of ``cells`` cells (``count`` pulses each, in parallel) as a :class:`ProgramResult`
    (its duration: the pulse time alone, ``count * width_s``)."""
    return ProgramResult(array, pulse, cells * count, cells, count, count * pulse.width_s)


def verify_pulses(shortfall_S: np.ndarray, step_S: float, iteration: int, most: int) -> np.ndarray:
    """Pulses of one write-verify pass towards a conductance shortfall (S), potentiation only.

    Wherever the shortfall exceeds half a mean step: the first pass aims at 3/4 of it and later
    passes at ``floor`` of it (at least one pulse, at most ``most``), so neither the device
    nonlinearity (larger steps near Gmin) nor the programming variability overshoots by much;
    overshoot cannot be undone without a reset. The rule is
    :func:`protocols.write_verify.correction_pulses` with these choices.
    """
    return correction_pulses(
        np.maximum(shortfall_S, 0.0),
        step_S,
        most,
        fraction=0.75 if iteration == 0 else 1.0,
        rounding="down",
        dead_band_steps=0.5,
    )


#: the uniform draws :func:`host_counts` gets when it rounds (it reads none), made once
_NO_DRAWS = np.zeros((0, 0))
_NO_DRAWS.flags.writeable = False

#: An incremental saturation check reads a cell list while at most this fraction of cells moved.
_INCREMENTAL_MOST = 0.25


class ArrayNetwork:
    """The network on the backend's arrays; every operation is a backend call."""

    def __init__(self, ctx: RunContext, params: HybridTrainingParams, rng: np.random.Generator) -> None:
        self.ctx = ctx
        self.backend = ctx.backend
        self.p = params
        #: draws of the stochastic pulse-count mapping
        self.rng = rng
        #: the general update path's counts (compiled; tests swap in ``host_counts_reference``)
        self.host_counts = host_counts
        self.layers: list[Layer] = layers_of(params)
        self.set_pulse = Pulse(params.pulse_amplitude_V, params.pulse_width_s)
        self.reset_pulse = Pulse(params.reset_amplitude_V, params.reset_width_s)
        self.max_count = min(self.ctx.station.limits.max_pulses_per_call, 100_000)
        self.stats: dict[str, ProgramStats] = {}
        self.reset_stats()
        #: native VMM: forward/backward passes are one backend ``vmm`` each; otherwise the
        #: passes use conductances read from the arrays, re-read only after an array is programmed
        self.native_vmm = self.backend.capabilities.native_vmm
        self._read_cache: dict[str, np.ndarray] = {}
        #: per (layer, active + array): the cells programmed since that layer's last saturation
        #: check (a superset), so the next in-epoch check reads only those; absent: read all
        self._touched: dict[tuple[int, str], np.ndarray] = {}
        #: per array: its conductances at the last saturation check, patched by incremental ones (S)
        self._last_check_g: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ programming (invalidates reads)
    def _program(self, name: str, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        self._read_cache.pop(name, None)
        return self.backend.program(name, counts, pulse)

    def _program_cells(self, name: str, cells: np.ndarray, counts: np.ndarray, pulse: Pulse) -> ProgramResult:
        self._read_cache.pop(name, None)
        return self.backend.program_cells(name, cells, counts, pulse)

    def _program_outer(self, name: str, r: np.ndarray, c: np.ndarray, pulse: Pulse) -> ProgramResult:
        self._read_cache.pop(name, None)
        return self.backend.program_outer(name, r, c, pulse)

    def _program_streams(self, name: str, rows: np.ndarray, cols: np.ndarray, pulse: Pulse) -> ProgramResult:
        self._read_cache.pop(name, None)
        return self.backend.program_streams(name, rows, cols, pulse)

    def _pulse(self, name: str, cells: Any, pulse: Pulse, count: int) -> None:
        self._read_cache.pop(name, None)
        self.backend.pulse(name, cells, pulse, count)

    def _weights_from_reads(self, lay: Layer) -> np.ndarray:
        """``a * sum_s s G`` from reads (S -> weight units), each array re-read only when programmed."""
        w = np.zeros((lay.rows, lay.cols))
        for kind, name in lay.names.items():
            g = self._read_cache.get(name)
            if g is None:
                g = self.read(name)
                self._read_cache[name] = g
            w += SIGNS[kind] * g
        return lay.alpha * w

    # ------------------------------------------------------------------ bookkeeping
    def reset_stats(self) -> None:
        """Start a new epoch's :class:`ProgramStats` for every array."""
        self.stats = {name: ProgramStats() for lay in self.layers for name in lay.read_names}

    def _energy(self, layer: Layer, kind: str, pulses: int, pulse: Pulse) -> float:
        """V * I * t per pulse with I = G V, G the array's mean conductance at its last read (J)."""
        g = layer.g_mean.get(kind, 0.0)
        return pulses * pulse.amplitude_V**2 * g * pulse.width_s

    def _account(self, lay: Layer, kind: str, result: ProgramResult) -> None:
        """Add a programming call on ``kind``'s array to its epoch's effort (energy at its mean G)."""
        energy = self._energy(lay, kind, result.pulses_applied, result.pulse)
        self.stats[lay.names[kind]].add(result, energy)

    def _log_program(self, name: str, counts_rows: np.ndarray, counts_cols: np.ndarray, counts: np.ndarray,
                     pulse: Pulse, purpose: str, epoch: int, sample: int) -> None:  # fmt: skip
        if not self.p.log_pulses or counts.size == 0:
            return
        self.ctx.log_pulses(
            purpose=purpose, array=name, row=counts_rows, col=counts_cols, amplitude_V=pulse.amplitude_V,
            width_s=pulse.width_s, count=counts, t_s=self.backend.now(), cycle=epoch, step=sample,
        )  # fmt: skip

    # ------------------------------------------------------------------ calibration and init
    def calibrate(self) -> dict[tuple[str, str], np.ndarray]:
        """Gmin and Gmax per cell of every array; sets steps and the weight scale of each layer."""
        snaps: dict[tuple[str, str], np.ndarray] = {}
        for lay in self.layers:
            for kind, name in lay.names.items():
                self._pulse(name, None, self.reset_pulse, self.p.reset_pulses)
                gmin = self.backend.read(name, None, self.p.read_voltage_V).conductance_S.copy()
                full = np.full((lay.rows, lay.cols), lay.states[kind], dtype=np.int64)
                self._program(name, full, self.set_pulse)
                gmax = self.backend.read(name, None, self.p.read_voltage_V).conductance_S.copy()
                self._pulse(name, None, self.reset_pulse, self.p.reset_pulses)
                snaps[(name, "gmin")] = gmin
                snaps[(name, "gmax")] = gmax
        self.apply_calibration(snaps)
        return snaps

    def apply_calibration(self, snaps: dict[tuple[str, str], np.ndarray]) -> None:
        """Set every layer's windows, steps and weight scale from Gmin/Gmax snapshots (S)."""
        for lay in self.layers:
            windows = []
            for kind, name in lay.names.items():
                gmin, gmax = snaps[(name, "gmin")], snaps[(name, "gmax")]
                span = gmax - gmin
                median = float(np.median(span))
                if not median > 0:
                    raise ConfigError(
                        f"calibration: array '{name}' did not respond to {lay.states[kind]} pulses of "
                        f"{self.set_pulse.amplitude_V:g} V / {self.set_pulse.width_s:g} s (median window {median:g} S)"
                    )
                # stuck or weak cells: keep their window from collapsing the saturation estimate
                gmax = np.maximum(gmax, gmin + 0.25 * median)
                lay.gmin[kind], lay.gmax[kind] = gmin, gmax
                lay.step[kind] = median / lay.states[kind]
                lay.g_mean[kind] = float(np.mean(gmin))
                if kind.startswith("G"):
                    windows.append(median)
            lay.alpha = self.p.layer_w_max(lay.index) / float(np.mean(windows))

    def init_weights(self, weights: list[np.ndarray]) -> None:
        """Program initial weights (weight units) onto the G pairs, open loop, g pairs left at Gmin."""
        for lay, w in zip(self.layers, weights, strict=True):
            for kind, sign in (("Gp", 1.0), ("Gm", -1.0)):
                counts = np.rint(np.maximum(sign * w, 0.0) / (lay.alpha * lay.step[kind])).astype(np.int64)
                counts = np.minimum(counts, lay.states[kind])
                if counts.any():
                    self._account(lay, kind, self._program(lay.names[kind], counts, self.set_pulse))

    # ------------------------------------------------------------------ inference
    def layer_forward(self, lay: Layer, x: np.ndarray) -> np.ndarray:
        """Weighted sums ``z = W^T x`` of a layer (weight units) from one backend VMM.

        Inputs (one vector or a batch of rows) are scaled so their largest magnitude is driven
        at ``read_voltage_V``, and the sensed currents are scaled back.
        """
        vr = self.p.read_voltage_V
        if not self.native_vmm:
            return x @ self._weights_from_reads(lay)
        if x.ndim == 1:
            peak = float(np.abs(x).max())
            if peak == 0.0:
                return np.zeros(lay.cols)
            current = self.backend.vmm(lay.read_names, x * (vr / peak), "forward", lay.read_signs)
            return current * (peak * lay.alpha / vr)
        scale = np.max(np.abs(x), axis=-1, keepdims=True)
        scale = np.where(scale > 0, scale, 1.0)
        current = self.backend.vmm(lay.read_names, x / scale * vr, "forward", lay.read_signs)
        return current / vr * scale * lay.alpha

    def layer_backward(self, lay: Layer, delta: np.ndarray) -> np.ndarray:
        """``W delta`` (weight units, bias row dropped) from one backward VMM."""
        peak = float(np.max(np.abs(delta)))
        if peak == 0.0:
            return np.zeros(lay.rows - (1 if self.p.bias else 0))
        vr = self.p.read_voltage_V
        if not self.native_vmm:
            back = self._weights_from_reads(lay) @ delta
            return back[:-1] if self.p.bias else back
        current = self.backend.vmm(lay.read_names, delta * (vr / peak), "backward", lay.read_signs)
        back = current * (peak * lay.alpha / vr)
        return back[:-1] if self.p.bias else back

    # ------------------------------------------------------------------ update
    def pulse_mapping(self, phase: str) -> str:
        """How a phase's weight changes become pulse counts: ``pulse_mapping``, or in fine tuning
        ``fine_pulse_mapping`` unless that is ``same``."""
        if phase == "fine" and self.p.fine_pulse_mapping != "same":
            return self.p.fine_pulse_mapping
        return self.p.pulse_mapping

    def update(
        self,
        lay: Layer,
        x: np.ndarray,
        delta: np.ndarray,
        phase: str,
        epoch: int,
        sample: int,
        nonnegative: bool = False,
    ) -> None:
        """Apply ``dW = -lr delta x^T`` to the layer's active pair (G in dynamic, g in fine tuning).

        Pulse counts are ``|dW|`` over :meth:`count_step` (rounded, stochastically rounded, or
        counted coincidences of pulse streams), by the phase's :meth:`pulse_mapping`.

        ``nonnegative`` says ``x >= 0`` is known (pixels, sigmoid outputs), sparing a check.
        """
        plus, minus = active_pair(phase)
        lr = self.p.lr
        mapping = self.pulse_mapping(phase)
        if mapping == "round" and (nonnegative or x.min() >= 0.0):
            self._update_outer(lay, x, delta, plus, minus, epoch, sample)
            return
        if mapping == "coincidence":
            self._update_streams(lay, x, delta, plus, minus, epoch, sample)
            return
        # general path: host-computed counts (signed inputs, or stochastic rounding)
        rows = np.flatnonzero(x)
        if rows.size == 0:
            return
        x_rows = np.ascontiguousarray(x[rows], dtype=np.float64)
        delta = np.ascontiguousarray(delta, dtype=np.float64)
        stochastic = mapping == "stochastic"
        for kind, sign in ((plus, 1.0), (minus, -1.0)):
            # one uniform per cell of the block for each device, drawn whatever the counts
            u = self.rng.random((rows.size, delta.size)) if stochastic else _NO_DRAWS
            rr, cc, counts = self.host_counts(
                x_rows, delta, -lr, sign, lay.alpha * self.count_step(lay, kind),
                min(lay.states[kind], self.max_count), u, stochastic,
            )  # fmt: skip
            if rr.size == 0:
                continue
            rr = rows[rr]
            self._mark(lay, plus, (rr, cc))
            name = lay.names[kind]
            self._account(
                lay, kind, self._program_cells(name, np.column_stack((rr, cc)), counts, self.set_pulse)
            )
            if self.p.log_pulses:
                self._log_program(name, rr, cc, counts, self.set_pulse, "update", epoch, sample)

    def _update_outer(self, lay: Layer, x: np.ndarray, delta: np.ndarray, plus: str, minus: str, epoch: int,
                      sample: int) -> None:  # fmt: skip
        """The rounded update with inputs ``x >= 0``: ``round(r_i c_j)`` pulses with ``r = x`` and
        ``c = lr |delta| / (a step)``, one ``program_outer`` per array that gets any pulse."""
        lr = self.p.lr
        r_max = float(x.max())
        if r_max == 0.0:
            return
        d_lo, d_hi = float(delta.min()), float(delta.max())
        for kind, direction, d_peak in ((plus, -1.0, -d_lo), (minus, 1.0, d_hi)):
            scale = lr / (lay.alpha * self.count_step(lay, kind))
            if r_max * d_peak * scale < 0.5:
                continue  # no cell would receive a pulse
            c = np.multiply(delta, direction * scale)
            np.maximum(c, 0.0, out=c)
            limit = min(lay.states[kind], self.max_count) / r_max
            if d_peak * scale > limit:
                c = np.minimum(c, limit)
            name = lay.names[kind]
            self._account(lay, kind, self._program_outer(name, x, c, self.set_pulse))
            mask = self._touched.get((lay.index, plus))
            if mask is not None:
                # every cell with round(r_i c_j) >= 1 lies in this block of rows and columns
                half = 0.5 * (1.0 - 1e-9)
                c_top = min(d_peak * scale, limit)
                # the same cells as np.ix_ of both index lists, set six times faster
                mask[np.flatnonzero(x * c_top >= half)] |= c * r_max >= half
            if self.p.log_pulses:
                counts = np.rint(np.multiply.outer(x, c)).astype(np.int64)
                rr, cc = np.nonzero(counts)
                self._log_program(name, rr, cc, counts[rr, cc], self.set_pulse, "update", epoch, sample)

    def _update_streams(self, lay: Layer, x: np.ndarray, delta: np.ndarray, plus: str, minus: str, epoch: int,
                        sample: int) -> None:  # fmt: skip
        """The pulse-coincidence update (:mod:`protocols.training.coincidence`): for each device,
        row and column streams whose coincidences number ``lr |x_i delta_j| / (a step)`` on
        average, drawn from the run's rng, applied by ``program_streams``.

        A cell's change has sign ``-sign(x_i) sign(delta_j)``: the + device gets the cells where
        it is positive, by masking the streams. With ``x >= 0`` that is one call per array (the
        columns with ``delta < 0`` for +, ``delta > 0`` for -); with signed ``x`` two (rows with
        ``x > 0`` against one column set, rows with ``x < 0`` against the other; the two calls
        touch disjoint cells, so together they apply exactly the masked coincidences of one
        stream draw). The streams last ``min(bit_length, states, max_count)`` slots, which caps
        each cell's count as the other mappings do.
        """
        lr = self.p.lr
        pos_x, neg_x = x > 0, x < 0
        neg_d, pos_d = delta < 0, delta > 0
        signed = bool(neg_x.any())
        for kind, pairs in (
            (plus, ((pos_x, neg_d), (neg_x, pos_d))),
            (minus, ((pos_x, pos_d), (neg_x, neg_d))),
        ):
            bits = min(self.p.bit_length, lay.states[kind], self.max_count)
            gain = lr / (lay.alpha * self.count_step(lay, kind))
            streams = draw_streams(x, delta, gain, bits, self.rng)
            name = lay.names[kind]
            for row_on, col_on in pairs if signed else pairs[:1]:
                # with x >= 0 every row that fires has x > 0: only the columns need masking
                rows = streams.rows & row_on[:, None] if signed else streams.rows
                cols = streams.cols & col_on[:, None]
                fired_r, fired_c = rows.any(axis=1), cols.any(axis=1)
                if not (fired_r.any() and fired_c.any()):
                    continue  # no coincidence possible
                self._account(lay, kind, self._program_streams(name, rows, cols, self.set_pulse))
                mask = self._touched.get((lay.index, plus))
                if mask is not None:
                    # every coincidence lies in the block of rows and columns that fired
                    mask[np.flatnonzero(fired_r)] |= fired_c
                if self.p.log_pulses:
                    counts = coincidence_counts(rows, cols)
                    rr, cc = np.nonzero(counts)
                    self._log_program(name, rr, cc, counts[rr, cc], self.set_pulse, "update", epoch, sample)

    def count_step(self, lay: Layer, kind: str) -> float:
        """Conductance step (S) that turns a weight change into pulse counts for device ``kind``.

        A device's own calibrated step, except for a g device under ``fine_counts=same``: then
        the counts are those computed for the G device of the same sign (the paper's "simple
        array selection logic": the same row and column pulses, routed to the small array), so
        the weight change is G's scaled by the small device's gain (about 1/k on the twin).
        """
        if kind in ("gp", "gm") and self.p.fine_counts == "same":
            return lay.step["G" + kind[1]]
        return lay.step[kind]

    # ------------------------------------------------------------------ reads
    def read(self, name: str) -> np.ndarray:
        """Conductance (S) of every cell of array ``name``, read at ``read_voltage_V``."""
        return self.backend.read(name, None, self.p.read_voltage_V).conductance_S

    def weights(self, lay: Layer, conductances: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The layer's weight matrix (weight units) from a read of its arrays."""
        g = conductances or {kind: self.read(name) for kind, name in lay.names.items()}
        w = np.zeros((lay.rows, lay.cols))
        for kind in lay.names:
            w += SIGNS[kind] * g[kind]
        return lay.alpha * w

    # ------------------------------------------------------------------ occasional reset
    def check_intervals(self) -> list[int]:
        """Longest samples between saturation checks of each layer: ``reset_interval`` for the
        largest layer, proportionally fewer for smaller ones (the same cells read per sample)."""
        biggest = max(lay.rows * lay.cols for lay in self.layers)
        return [max(1, round(self.p.reset_interval * lay.rows * lay.cols / biggest)) for lay in self.layers]

    def hot_pairs(self, lay: Layer, plus: str, minus: str, gp: np.ndarray, gm: np.ndarray,
                  at: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:  # fmt: skip
        """Pairs to reset: one device above ``reset_level`` of its window and the other above
        ``1 - reset_level``, so that a reset frees room (a pair whose *weight* fills the window
        stays as it is: resetting it would only re-program the same state). ``gp``, ``gm``: the
        whole arrays, or the cells ``at`` (rows, cols)."""
        sel = (slice(None),) if at is None else at
        lo_p, lo_m = lay.gmin[plus][sel], lay.gmin[minus][sel]
        xp = (gp - lo_p) / (lay.gmax[plus][sel] - lo_p)
        xm = (gm - lo_m) / (lay.gmax[minus][sel] - lo_m)
        level = self.p.reset_level
        return (np.maximum(xp, xm) >= level) & (np.minimum(xp, xm) >= 1.0 - level)

    def _mark(self, lay: Layer, plus: str, at: tuple[np.ndarray, np.ndarray]) -> None:
        """Note cells ``at`` (rows, cols) of the pair whose + array is ``plus`` as programmed since
        the layer's last saturation check (when its checks are incremental)."""
        mask = self._touched.get((lay.index, plus))
        if mask is not None:
            mask[at] = True

    def check_saturation(
        self,
        phase: str,
        epoch: int,
        sample: int,
        layers: list[Layer] | None = None,
        incremental: bool = False,
    ) -> int:
        """Reset the active pairs that near saturation (Burr et al. 2015); returns the pairs reset.

        A full check reads both arrays of the active pair. An ``incremental`` check reads only
        the cells programmed since the layer's last check (a pair nobody programmed has not
        moved towards saturation: retention only lowers conductance) and, where no check of the
        pair has happened yet, everything.
        """
        plus, minus = active_pair(phase)
        total = 0
        for lay in self.layers if layers is None else layers:
            key = (lay.index, plus)
            names = (lay.names[plus], lay.names[minus])
            mask = self._touched.get(key) if incremental else None
            at: tuple[np.ndarray, np.ndarray] | None = None
            if mask is not None:
                rows_at, cols_at = np.nonzero(mask)
                # most cells moved: one whole-array read is cheaper than a cell list
                if rows_at.size <= _INCREMENTAL_MOST * mask.size:
                    at = (rows_at, cols_at)
            if at is None:
                gp = np.array(self.read(names[0]))
                gm = np.array(self.read(names[1]))
                self._last_check_g[names[0]], self._last_check_g[names[1]] = gp, gm
                gp_at, gm_at = gp, gm
                hot = self.hot_pairs(lay, plus, minus, gp, gm)
            else:
                cells_at = np.column_stack(at)
                gp_at, gm_at = np.zeros(len(cells_at)), np.zeros(len(cells_at))
                if len(cells_at):
                    gp_at = self.backend.read(names[0], cells_at, self.p.read_voltage_V).conductance_S
                    gm_at = self.backend.read(names[1], cells_at, self.p.read_voltage_V).conductance_S
                gp, gm = self._last_check_g[names[0]], self._last_check_g[names[1]]
                gp[at], gm[at] = gp_at, gm_at
                hot = self.hot_pairs(lay, plus, minus, gp_at, gm_at, at)
            lay.g_mean[plus], lay.g_mean[minus] = float(gp.mean()), float(gm.mean())
            n_hot = int(np.count_nonzero(hot))
            lay.last_reset_fraction = n_hot / (lay.rows * lay.cols)
            fresh = np.zeros((lay.rows, lay.cols), dtype=bool)
            self._touched[key] = fresh
            if not n_hot:
                continue
            cells = np.argwhere(hot) if at is None else np.column_stack((at[0][hot], at[1][hot]))
            net = (gp_at - gm_at)[hot]
            for kind, g in ((plus, gp_at), (minus, gm_at)):
                self._strong_reset(lay, kind, cells, g[hot], epoch, sample)
            self.write_verify_pair(lay, plus, minus, cells, net, epoch, sample)
            fresh[cells[:, 0], cells[:, 1]] = True  # reset and re-programmed since this check
            total += len(cells)
        return total

    def _strong_reset(self, lay: Layer, kind: str, cells: np.ndarray, g_S: np.ndarray, epoch: int,
                      sample: int) -> None:  # fmt: skip
        """Strongly reset ``cells`` of ``kind``'s array (conductances ``g_S`` before) and account it
        (energy: each cell's conductance times the reset pulses' V^2 t)."""
        name = lay.names[kind]
        pulses = self.p.reset_pulses
        self._pulse(name, cells, self.reset_pulse, pulses)
        energy = float(np.sum(g_S)) * pulses * self.reset_pulse.amplitude_V**2 * self.reset_pulse.width_s
        self.stats[name].add(reset_result(name, len(cells), self.reset_pulse, pulses), energy, reset=True)
        if self.p.log_pulses:
            self._log_program(name, cells[:, 0], cells[:, 1], np.full(len(cells), pulses),
                              self.reset_pulse, "reset", epoch, sample)  # fmt: skip

    # ------------------------------------------------------------------ write-verify
    def write_verify_pair(self, lay: Layer, plus: str, minus: str, cells: np.ndarray, target_S: np.ndarray,
                          epoch: int = 0, sample: int = 0) -> None:  # fmt: skip
        """Potentiate + or - devices of ``cells`` until ``G+ - G-`` is within half a step of ``target_S``.

        Pulses per pass are :func:`verify_pulses`' (conservative, so passes converge from below).
        """
        self._mark(lay, plus, (cells[:, 0], cells[:, 1]))
        for iteration in range(self.p.verify_iterations):
            gp = self.backend.read(lay.names[plus], cells, self.p.read_voltage_V).conductance_S
            gm = self.backend.read(lay.names[minus], cells, self.p.read_voltage_V).conductance_S
            err = target_S - (gp - gm)
            done = True
            for kind, sign in ((plus, 1.0), (minus, -1.0)):
                n = verify_pulses(
                    sign * err, lay.step[kind], iteration, min(lay.states[kind], self.max_count)
                )
                if not n.any():
                    continue
                done = False
                name = lay.names[kind]
                self._account(lay, kind, self._program_cells(name, cells, n, self.set_pulse))
                if self.p.log_pulses:
                    nz = n > 0
                    self._log_program(
                        name, cells[nz, 0], cells[nz, 1], n[nz], self.set_pulse, "verify", epoch, sample
                    )
            if done:
                return

    def write_verify_devices(self, lay: Layer, kind: str, target_S: np.ndarray) -> None:
        """Bring every device of one array to ``target_S`` (reset those above it, then potentiate)."""
        name = lay.names[kind]
        g = self.read(name)
        above = g > target_S + 0.5 * lay.step[kind]
        if above.any():
            self._pulse(name, np.argwhere(above), self.reset_pulse, self.p.reset_pulses)
        for iteration in range(self.p.verify_iterations):
            g = self.read(name)
            n = verify_pulses(target_S - g, lay.step[kind], iteration, min(lay.states[kind], self.max_count))
            if not n.any():
                return
            self._account(lay, kind, self._program(name, n, self.set_pulse))

    def program_weights(self, weights: list[np.ndarray]) -> None:
        """Write-verify target weights (weight units) onto the arrays (ex-situ mode).

        Every array is reset first. The G pair takes the weight (to within half its step); for
        the hybrid synapse the g pair then takes what G left over, as far as its range allows.
        """
        for lay, w in zip(self.layers, weights, strict=True):
            for name in lay.read_names:
                self._pulse(name, None, self.reset_pulse, self.p.reset_pulses)
            cells = np.argwhere(np.ones((lay.rows, lay.cols), dtype=bool))
            at = (cells[:, 0], cells[:, 1])
            target = (w / lay.alpha)[at]
            small = None
            if "gp" in lay.names:
                small = self.read(lay.names["gp"])[at] - self.read(lay.names["gm"])[at]
            self.write_verify_pair(lay, "Gp", "Gm", cells, target - (0.0 if small is None else small))
            if small is not None:
                big = self.read(lay.names["Gp"])[at] - self.read(lay.names["Gm"])[at]
                self.write_verify_pair(lay, "gp", "gm", cells, target - big)
