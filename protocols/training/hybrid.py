"""In-situ training of a fully connected network with the RRAM hybrid synapse (Choi et al. 2021).

Methods (choices the paper leaves open are marked CHOICE; ``docs/training.md`` discusses them):

- Network: fully connected, sizes ``784 - hidden... - 10`` (the paper's 784-250-10), batch size
  1, learning rate ``lr`` (0.1). CHOICE: activation ``sigmoid`` (pluggable, see
  :mod:`protocols.training.activations`), loss ``0.5 * sum (y - t)^2`` on one-hot targets (the paper
  reports the mean squared error, Fig. 4C); a bias row per layer, driven at the full read voltage.
- Synapses: ``fp`` (floats, the baseline), ``single`` (``W = a (G+ - G-)``) or ``hybrid``
  (``W = a ((G+ - G-) + (g+ - g-))``). Every device lives in its own array:
  ``L{l}_Gp, L{l}_Gm`` (and ``L{l}_gp, L{l}_gm``) of shape ``(inputs + 1, outputs)``. The gain
  1/k of g is physical: on the twin the g arrays are fabricated with a device area k times
  smaller than the G arrays; on hardware they are whatever the station's arrays are. The only
  software factor is ``a`` (weight per siemens, one per layer, the read-out circuit's gain),
  and it multiplies all four arrays alike.
- Forward/backward: one backend ``vmm`` over all arrays of a layer with signs ``+1, -1, +1, -1``
  (native VMM where the backend has it, else conductance reads). Inputs are scaled so their
  largest magnitude is driven at ``read_voltage_V``; the sensed current is scaled back.
- Update: ``dW = -lr * delta x^T``. CHOICE (``pulse_mapping=round``): cell (i, j) of the device
  that must grow (+ for dW > 0, - for dW < 0) receives ``round(|dW_ij| / (a * step))`` identical
  potentiation pulses, ``step`` being that array's calibrated mean conductance change per pulse.
  With non-negative inputs this is exactly the crossbar's pulse-coincidence outer product
  ``round(r_i c_j)`` with ``r = x`` and ``c = lr |delta| / (a step)``: one ``program_outer`` call
  per array per update. ``stochastic`` rounds up with probability equal to the fraction (a
  host-computed count matrix, one ``program`` call). Depression is never used for updates.
- Phases (hybrid): dynamic tuning updates only G; when the training accuracy gains less than
  ``switch_threshold_pp`` percentage points over an epoch, fine tuning updates only g, G frozen.
- Occasional reset (Burr et al. 2015): every ``reset_interval`` samples and at each epoch end
  the active pair arrays are read; a pair with a device above ``reset_level`` of its calibrated
  window gets a strong reset of both devices (``reset_pulses`` x ``reset_amplitude_V``) and its
  net conductance is re-programmed onto one device by write-verify. Resets are counted.
- Calibration (arrays): each array is strongly reset and read (Gmin per cell), given ``states``
  (``g_states``) pulses and read (Gmax per cell), and reset again. The median window over the
  number of states is the array's ``step``; ``a = w_max / median window of G``.
- Per epoch one transaction commits the ``epochs`` row (accuracies, MSE, pulses, resets,
  update frequency, energy and update-time estimates), per-array statistics, a conductance
  snapshot of every array, the tracked synapses' weight history and the |W_target - W| histogram
  of the last layer, and the checkpoint; ``rram-hil resume RUN`` re-programs the arrays to the
  last committed snapshot (write-verify) and continues with the next epoch.
- ``mode=ex-situ``: train in floating point, program the targets onto the arrays by
  write-verify, and measure inference accuracy through the backend.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import field_validator, model_validator

from hil.errors import ConfigError
from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.store.training import EpochRecord, commit_epoch, load_snapshot, save_snapshots
from hil.types import ArrayRequest, ArraySpec, DeviceRequest, ProgramResult, Pulse
from protocols.params import quantity
from protocols.training.activations import Activation, activation_names, get_activation, is_activation_name
from protocols.training.mnist import Mnist, load_mnist, resolve_mnist_dir

N_INPUTS = 784
IMAGE_SIDE = 28
N_CLASSES = 10
KINDS_HYBRID = ("Gp", "Gm", "gp", "gm")
KINDS_SINGLE = ("Gp", "Gm")
SIGNS = {"Gp": 1.0, "Gm": -1.0, "gp": 1.0, "gm": -1.0}


def active_pair(phase: str) -> tuple[str, str]:
    """The (plus, minus) device kinds a training phase updates: G in dynamic, g in fine tuning."""
    return ("gp", "gm") if phase == "fine" else ("Gp", "Gm")


def _int_list(value: Any) -> Any:
    if isinstance(value, str):
        parts = [p for p in value.replace("-", ",").replace(" ", ",").split(",") if p]
        return [int(p) for p in parts]
    if isinstance(value, int):
        return [value]
    return value


def _float_list(value: Any) -> Any:
    if isinstance(value, str):
        return [float(p) for p in value.replace(" ", ",").split(",") if p]
    if isinstance(value, int | float):
        return [float(value)]
    return value


class HybridTrainingParams(Params):
    synapse: Literal["fp", "single", "hybrid"] = quantity(
        "hybrid", "", "fp (floats), single (G+ - G-) or hybrid ((G+ - G-) + (g+ - g-))"
    )
    mode: Literal["in-situ", "ex-situ"] = quantity(
        "in-situ", "", "in-situ training on the arrays, or ex-situ (float training, then write-verify)"
    )
    hidden: list[int] = quantity([250], "", "hidden layer sizes, e.g. 250 or 500,100")
    input_pool: Literal[1, 2, 4, 7, 14, 28] = quantity(
        1, "", "average-pool the 28 x 28 images in blocks of this side (1: 784 inputs; 7: 16 inputs)"
    )
    states: int = quantity(50, "", "conductance states of a big (G) device", ge=2, le=100_000)
    g_states: int | None = quantity(
        None, "", "states of a small (g) device (default: states)", ge=2, le=100_000
    )
    g_states_mode: Literal["window", "step"] = quantity(
        "window",
        "",
        "twin: g_states != states keeps g's step (G step / k) and widens its window (window), "
        "or keeps the window and refines the step (step)",
    )
    k: float = quantity(10.0, "", "area ratio of big to small devices (twin)", ge=1, le=1000)
    lr: float = quantity(0.1, "", "learning rate", gt=0, le=100)
    loss: Literal["cross_entropy", "mse"] = quantity(
        "cross_entropy",
        "",
        "training loss: cross_entropy (output error y - t) or mse (y - t times f'); MSE is recorded either way",
    )
    epochs: int = quantity(10, "", "training epochs", ge=1, le=10_000)
    switch_threshold_pp: float = quantity(
        0.5, "pp", "switch to fine tuning when the training accuracy gains less than this", ge=0, le=100
    )
    min_dynamic_epochs: int = quantity(1, "", "dynamic-tuning epochs before a switch is considered", ge=1)
    max_dynamic_epochs: int | None = quantity(
        None, "", "switch after this many dynamic epochs at the latest", ge=1
    )
    c2c_sigma_over_mu: float | None = quantity(
        None, "", "twin: programming (cycle-to-cycle) sigma/mu of dG (default: the preset's)", ge=0, le=10
    )
    d2d_sigma: float | None = quantity(
        None, "", "twin: device-to-device sigma of Gmin, relative (default: the preset's)", ge=0, le=5
    )
    train_limit: int | None = quantity(None, "", "use the first N training images", ge=1)
    test_limit: int | None = quantity(None, "", "use the first N test images", ge=1)
    data_dir: str | None = quantity(None, "", "directory of the MNIST IDX files (default: $RRAM_HIL_DATA)")
    seed: int | None = quantity(
        None,
        "",
        "seed of initial weights, shuffling and (twin) devices; default: the run's seed",
        ge=0,
        le=2**32 - 1,
    )
    activation: str = quantity(
        "sigmoid",
        "",
        f"neuron activation ({', '.join(activation_names())}, or iv-run:RUN[:ARRAY:ROW:COL], "
        "the I-V curve of a neuron device measured in run RUN of the same database)",
    )
    bias: bool = quantity(True, "", "a bias row per layer (driven at the full read voltage)")
    w_max: list[float] = quantity(
        [0.5, 2.0], "", "weight of a full G window per layer (one value, or one per layer)"
    )
    init_scale: float = quantity(
        1.0, "", "initial weights uniform in +-init_scale/sqrt(fan-in)", ge=0, le=100
    )
    fine_counts: Literal["same", "rescaled"] = quantity(
        "same",
        "",
        "fine tuning: the pulse counts computed for G applied to g (same: the paper's array "
        "selection, g's gain 1/k scales the update), or recomputed from g's own step (rescaled)",
    )
    pulse_mapping: Literal["round", "stochastic"] = quantity(
        "round", "", "pulse count per cell: round(|dW|/step), or stochastic rounding"
    )
    read_voltage_V: float = quantity(0.5, "V", "largest VMM drive (inputs scaled to it)", gt=0, le=5)
    pulse_amplitude_V: float = quantity(2.0, "V", "potentiation pulse amplitude", gt=0, le=20)
    pulse_width_s: float = quantity(100e-6, "s", "potentiation pulse width", gt=0, le=1)
    reset_amplitude_V: float = quantity(-4.0, "V", "strong-reset pulse amplitude", ge=-20, lt=0)
    reset_width_s: float = quantity(100e-6, "s", "strong-reset pulse width", gt=0, le=1)
    reset_pulses: int = quantity(5, "", "pulses of a strong reset", ge=1, le=10_000)
    reset_level: float = quantity(
        0.9, "", "reset a pair when a device exceeds this fraction of its window", gt=0, le=1
    )
    reset_interval: int = quantity(
        1000,
        "",
        "samples between saturation checks of the largest layer (smaller layers: proportionally more often)",
        ge=1,
    )
    verify_iterations: int = quantity(
        3, "", "write-verify iterations (resets, ex-situ, resume)", ge=1, le=100
    )
    big_diameter_m: float = quantity(1e-6, "m", "twin: diameter of a big (G) device", gt=0, le=1e-3)
    track: int = quantity(3, "", "synapses of the last layer whose weight history is recorded", ge=0, le=100)
    track_interval: int = quantity(500, "", "samples between weight-history points", ge=1)
    werror_interval: int = quantity(50, "", "samples between |W_target - W| measurements", ge=1)
    eval_batch: int = quantity(1000, "", "images per batched VMM when evaluating", ge=1, le=100_000)
    log_pulses: bool = quantity(False, "", "log every programmed cell's pulses (small networks only)")

    _split_hidden = field_validator("hidden", mode="before")(_int_list)
    _split_w_max = field_validator("w_max", mode="before")(_float_list)

    @field_validator("hidden")
    @classmethod
    def _hidden_sizes(cls, value: list[int]) -> list[int]:
        if not value or any(n < 1 or n > 100_000 for n in value):
            raise ValueError("hidden sizes must be 1..100000 (at least one layer)")
        return value

    @field_validator("w_max")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(not (0 < w <= 1e6) or not math.isfinite(w) for w in value):
            raise ValueError("w_max values must be > 0")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HybridTrainingParams:
        if len(self.w_max) not in (1, len(self.hidden) + 1):
            raise ValueError(f"w_max: give one value or one per layer ({len(self.hidden) + 1})")
        if not is_activation_name(self.activation):
            raise ValueError(
                f"activation: '{self.activation}' is not known ({', '.join(activation_names())}, "
                "or iv-run:RUN[:ARRAY:ROW:COL])"
            )
        return self

    # derived
    @property
    def sizes(self) -> list[int]:
        side = IMAGE_SIDE // self.input_pool
        return [side * side, *self.hidden, N_CLASSES]

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    @property
    def small_states(self) -> int:
        return self.g_states if self.g_states is not None else self.states

    def layer_w_max(self, layer: int) -> float:
        return self.w_max[0] if len(self.w_max) == 1 else self.w_max[layer - 1]

    def kinds(self) -> tuple[str, ...]:
        return KINDS_HYBRID if self.synapse == "hybrid" else KINDS_SINGLE if self.synapse == "single" else ()


def array_name(layer: int, kind: str) -> str:
    """The station array of ``kind`` (Gp, Gm, gp, gm) in ``layer`` (1-based): ``L1_Gp``."""
    return f"L{layer}_{kind}"


def _big_area(params: HybridTrainingParams) -> float:
    return ArraySpec.area_from_diameter(params.big_diameter_m)


def needed_arrays(params: HybridTrainingParams) -> list[ArraySpec]:
    """The arrays a run needs: per layer ``(inputs + bias, outputs)``; g arrays k times smaller."""
    specs = []
    big = _big_area(params)
    for layer in range(1, params.n_layers + 1):
        rows = params.sizes[layer - 1] + (1 if params.bias else 0)
        cols = params.sizes[layer]
        for kind in params.kinds():
            area = big if kind.startswith("G") else big / params.k
            specs.append(ArraySpec(array_name(layer, kind), rows, cols, area))
    return specs


def device_request(params: HybridTrainingParams, array: str) -> DeviceRequest:
    """What array ``array`` asks of its devices: ``states`` (G) or ``g_states`` (g) states, the
    variability run parameters, and (``g_states_mode=window``) a g window widened in proportion to
    its extra states, so that g's step stays G's over k."""
    small = array.split("_")[-1].startswith("g")
    states = params.small_states if small else params.states
    widen = small and params.small_states != params.states and params.g_states_mode == "window"
    return DeviceRequest(
        n_states=states,
        window_scale=params.small_states / params.states if widen else None,
        c2c_sigma_over_mu=params.c2c_sigma_over_mu,
        d2d_sigma=params.d2d_sigma,
    )


# ====================================================================== networks
@dataclass
class ProgramStats:
    """Programming effort of one array, accumulated over an epoch."""

    calls: int = 0
    pulses: int = 0
    cells: int = 0
    resets: int = 0
    energy_J: float = 0.0
    time_parallel_s: float = 0.0
    time_serial_s: float = 0.0

    def add(self, result: ProgramResult, width_s: float, energy_J: float) -> None:
        self.calls += 1
        self.pulses += result.pulses_applied
        self.cells += result.cells_programmed
        self.energy_J += energy_J
        self.time_parallel_s += result.max_count * width_s
        self.time_serial_s += result.pulses_applied * width_s


@dataclass
class Layer:
    """One layer's arrays on the backend and their calibration."""

    index: int
    rows: int
    cols: int
    names: dict[str, str]
    alpha: float = 1.0  # weight per siemens
    gmin: dict[str, np.ndarray] = field(default_factory=dict)
    gmax: dict[str, np.ndarray] = field(default_factory=dict)
    step: dict[str, float] = field(default_factory=dict)
    g_mean: dict[str, float] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    last_reset_fraction: float = 0.0

    @property
    def read_names(self) -> list[str]:
        return list(self.names.values())

    @property
    def read_signs(self) -> list[float]:
        return [SIGNS[k] for k in self.names]


class ArrayNetwork:
    """The network on the backend's arrays; every operation is a backend call."""

    def __init__(self, ctx: RunContext, params: HybridTrainingParams, rng: np.random.Generator) -> None:
        self.ctx = ctx
        self.backend = ctx.backend
        self.p = params
        self.rng = rng
        self.layers: list[Layer] = []
        for layer in range(1, params.n_layers + 1):
            rows = params.sizes[layer - 1] + (1 if params.bias else 0)
            names = {kind: array_name(layer, kind) for kind in params.kinds()}
            lay = Layer(layer, rows, params.sizes[layer], names)
            for kind in names:
                lay.states[kind] = params.states if kind.startswith("G") else params.small_states
            self.layers.append(lay)
        self.set_pulse = Pulse(params.pulse_amplitude_V, params.pulse_width_s)
        self.reset_pulse = Pulse(params.reset_amplitude_V, params.reset_width_s)
        self.max_count = min(self.ctx.station.limits.max_pulses_per_call, 100_000)
        self.stats: dict[str, ProgramStats] = {}
        self.reset_stats()
        #: native VMM: forward/backward passes are one backend ``vmm`` each; otherwise the
        #: passes use conductances read from the arrays, re-read only after an array is programmed
        self.native_vmm = self.backend.capabilities.native_vmm
        self._read_cache: dict[str, np.ndarray] = {}

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
        self.stats = {name: ProgramStats() for lay in self.layers for name in lay.read_names}

    def _energy(self, layer: Layer, kind: str, pulses: int, pulse: Pulse) -> float:
        """V * I * t per pulse with I = G V, G the array's mean conductance at its last read (J)."""
        g = layer.g_mean.get(kind, 0.0)
        return pulses * pulse.amplitude_V**2 * g * pulse.width_s

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
                    res = self._program(lay.names[kind], counts, self.set_pulse)
                    self.stats[lay.names[kind]].add(
                        res,
                        self.set_pulse.width_s,
                        self._energy(lay, kind, res.pulses_applied, self.set_pulse),
                    )

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

        Pulse counts are ``|dW|`` over :meth:`count_step` (rounded, or stochastically rounded).

        ``nonnegative`` says ``x >= 0`` is known (pixels, sigmoid outputs), sparing a check.
        """
        plus, minus = active_pair(phase)
        lr = self.p.lr
        if self.p.pulse_mapping == "round" and (nonnegative or x.min() >= 0.0):
            r_max = float(x.max())
            if r_max == 0.0:
                return
            d_lo, d_hi = float(delta.min()), float(delta.max())
            for kind, direction, d_peak in ((plus, -1.0, -d_lo), (minus, 1.0, d_hi)):
                scale = lr / (lay.alpha * self.count_step(lay, kind))
                if r_max * d_peak * scale < 0.5:
                    continue  # no cell would receive a pulse
                c = np.maximum(direction * delta, 0.0) * scale
                limit = min(lay.states[kind], self.max_count) / r_max
                if d_peak * scale > limit:
                    c = np.minimum(c, limit)
                name = lay.names[kind]
                res = self._program_outer(name, x, c, self.set_pulse)
                self.stats[name].add(
                    res, self.set_pulse.width_s, self._energy(lay, kind, res.pulses_applied, self.set_pulse)
                )
                if self.p.log_pulses:
                    counts = np.rint(np.multiply.outer(x, c)).astype(np.int64)
                    rr, cc = np.nonzero(counts)
                    self._log_program(name, rr, cc, counts[rr, cc], self.set_pulse, "update", epoch, sample)
            return
        # general path: a host-computed count matrix (signed inputs, or stochastic rounding)
        rows = np.flatnonzero(x)
        if rows.size == 0:
            return
        dw = -lr * np.multiply.outer(x[rows], delta)
        for kind, sign in ((plus, 1.0), (minus, -1.0)):
            p_counts = np.maximum(sign * dw, 0.0) / (lay.alpha * self.count_step(lay, kind))
            if self.p.pulse_mapping == "stochastic":
                floor = np.floor(p_counts)
                sub = floor + (self.rng.random(p_counts.shape) < (p_counts - floor))
            else:
                sub = np.rint(p_counts)
            sub = np.minimum(sub, min(lay.states[kind], self.max_count)).astype(np.int64)
            rr, cc = np.nonzero(sub)  # row-major, as the dense count matrix would be taken
            if rr.size == 0:
                continue
            counts = sub[rr, cc]
            rr = rows[rr]
            name = lay.names[kind]
            res = self._program_cells(name, np.column_stack((rr, cc)), counts, self.set_pulse)
            self.stats[name].add(
                res, self.set_pulse.width_s, self._energy(lay, kind, res.pulses_applied, self.set_pulse)
            )
            if self.p.log_pulses:
                self._log_program(name, rr, cc, counts, self.set_pulse, "update", epoch, sample)

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

    def hot_pairs(self, lay: Layer, plus: str, minus: str, gp: np.ndarray, gm: np.ndarray) -> np.ndarray:
        """Pairs to reset: one device above ``reset_level`` of its window and the other above
        ``1 - reset_level``, so that a reset frees room (a pair whose *weight* fills the window
        stays as it is: resetting it would only re-program the same state)."""
        xp = (gp - lay.gmin[plus]) / (lay.gmax[plus] - lay.gmin[plus])
        xm = (gm - lay.gmin[minus]) / (lay.gmax[minus] - lay.gmin[minus])
        level = self.p.reset_level
        return (np.maximum(xp, xm) >= level) & (np.minimum(xp, xm) >= 1.0 - level)

    def check_saturation(self, phase: str, epoch: int, sample: int, layers: list[Layer] | None = None) -> int:
        """Reset the active pairs that near saturation (Burr et al. 2015); returns the pairs reset."""
        plus, minus = active_pair(phase)
        total = 0
        for lay in self.layers if layers is None else layers:
            gp, gm = self.read(lay.names[plus]), self.read(lay.names[minus])
            lay.g_mean[plus], lay.g_mean[minus] = float(gp.mean()), float(gm.mean())
            hot = self.hot_pairs(lay, plus, minus, gp, gm)
            lay.last_reset_fraction = float(hot.mean())
            if not hot.any():
                continue
            cells = np.argwhere(hot)
            net = (gp - gm)[hot]
            for kind, g in ((plus, gp), (minus, gm)):
                name = lay.names[kind]
                self._pulse(name, cells, self.reset_pulse, self.p.reset_pulses)
                n = len(cells) * self.p.reset_pulses
                st = self.stats[name]
                st.resets += len(cells)
                st.pulses += n
                st.energy_J += (
                    float(np.sum(g[hot]))
                    * self.p.reset_pulses
                    * self.reset_pulse.amplitude_V**2
                    * self.reset_pulse.width_s
                )
                st.time_parallel_s += self.p.reset_pulses * self.reset_pulse.width_s
                st.time_serial_s += n * self.reset_pulse.width_s
                if self.p.log_pulses:
                    self._log_program(name, cells[:, 0], cells[:, 1], np.full(len(cells), self.p.reset_pulses),
                                      self.reset_pulse, "reset", epoch, sample)  # fmt: skip
            self.write_verify_pair(lay, plus, minus, cells, net, epoch, sample)
            total += len(cells)
        return total

    def write_verify_pair(self, lay: Layer, plus: str, minus: str, cells: np.ndarray, target_S: np.ndarray,
                          epoch: int = 0, sample: int = 0) -> None:  # fmt: skip
        """Potentiate + or - devices of ``cells`` until ``G+ - G-`` is within half a step of ``target_S``.

        Pulses per pass are :func:`_correction`'s (conservative, so passes converge from below).
        """
        for iteration in range(self.p.verify_iterations):
            gp = self.backend.read(lay.names[plus], cells, self.p.read_voltage_V).conductance_S
            gm = self.backend.read(lay.names[minus], cells, self.p.read_voltage_V).conductance_S
            err = target_S - (gp - gm)
            done = True
            for kind, sign in ((plus, 1.0), (minus, -1.0)):
                n = _correction(sign * err, lay.step[kind], iteration)
                n = np.minimum(n, min(lay.states[kind], self.max_count))
                if not n.any():
                    continue
                done = False
                name = lay.names[kind]
                res = self._program_cells(name, cells, n, self.set_pulse)
                self.stats[name].add(
                    res, self.set_pulse.width_s, self._energy(lay, kind, res.pulses_applied, self.set_pulse)
                )
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
            n = _correction(target_S - g, lay.step[kind], iteration)
            n = np.minimum(n, min(lay.states[kind], self.max_count))
            if not n.any():
                return
            res = self._program(name, n, self.set_pulse)
            self.stats[name].add(
                res, self.set_pulse.width_s, self._energy(lay, kind, res.pulses_applied, self.set_pulse)
            )

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


def _correction(shortfall_S: np.ndarray, step_S: float, iteration: int) -> np.ndarray:
    """Pulses of one write-verify pass towards a conductance shortfall (S), potentiation only.

    Wherever the shortfall exceeds half a mean step: the first pass aims at 3/4 of it and later
    passes at ``floor`` of it (at least one pulse), so neither the device nonlinearity (larger
    steps near Gmin) nor the programming variability overshoots by much; overshoot cannot be
    undone without a reset.
    """
    steps = np.maximum(shortfall_S, 0.0) / step_S
    aim = np.floor(0.75 * steps) if iteration == 0 else np.floor(steps)
    return np.where(steps > 0.5, np.maximum(aim, 1.0), 0.0).astype(np.int64)


def _pool(images: np.ndarray, block: int) -> np.ndarray:
    """``(n, 784)`` images average-pooled in ``block x block`` squares: ``(n, (28 / block)^2)``."""
    if block == 1:
        return images
    side = IMAGE_SIDE // block
    return images.reshape(len(images), side, block, side, block).mean(axis=(2, 4)).reshape(len(images), -1)


class FloatNetwork:
    """The floating-point baseline: plain numpy weights, exact SGD (sparse inputs skip zero rows)."""

    def __init__(self, weights: list[np.ndarray]) -> None:
        self.w = [np.array(w, dtype=float) for w in weights]


# ====================================================================== the protocol
@dataclass
class EpochCounters:
    samples: int = 0
    correct: int = 0
    track_rows: list[dict[str, Any]] = field(default_factory=list)
    werr_sum: np.ndarray | None = None
    werr_n: int = 0
    resets: int = 0


class HybridTraining(Protocol):
    name = "hybrid-training"
    title = "In-situ training of a fully connected network with RRAM hybrid synapses (Choi et al. 2021)"
    Params = HybridTrainingParams
    supports_resume = True

    # ------------------------------------------------------------------ station
    def required_arrays(self, params: HybridTrainingParams, station: Station) -> list[ArrayRequest]:
        """Per layer one array per device kind, g arrays k times smaller, with the devices the run
        parameters ask for (states, variability); a twin fabricates them so."""
        if params.synapse == "fp":
            return []
        return [ArrayRequest(spec, device_request(params, spec.name)) for spec in needed_arrays(params)]

    def seed(self, params: HybridTrainingParams) -> int | None:
        return params.seed

    def preflight(self, params: HybridTrainingParams, station: Station) -> None:
        limits = station.limits
        if params.synapse != "fp":
            limits.check_pulse(Pulse(params.pulse_amplitude_V, params.pulse_width_s), 1)
            limits.check_pulse(
                Pulse(params.reset_amplitude_V, params.reset_width_s), params.reset_pulses, "reset_"
            )
            limits.check_read_voltage(params.read_voltage_V)
            biggest = max(params.states, params.small_states)
            if biggest > limits.max_pulses_per_call:
                raise ConfigError(
                    f"states: calibration needs {biggest} pulses per cell in one call; station allows "
                    f"{limits.max_pulses_per_call} (max_pulses_per_call)"
                )
        resolve_mnist_dir(params.data_dir)

    # ------------------------------------------------------------------ run
    def execute(self, ctx: RunContext, params: HybridTrainingParams) -> None:
        run = _TrainingRun(ctx, params)
        run.run()

    # ------------------------------------------------------------------ plot
    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        from protocols.training.plots import plot_training_run

        return plot_training_run(store, run_id, path)


class _TrainingRun:
    """State of one training run (kept out of the protocol object, which is stateless)."""

    def __init__(self, ctx: RunContext, params: HybridTrainingParams) -> None:
        self.ctx = ctx
        self.p = params
        self.seed = params.seed if params.seed is not None else int(ctx.seed or 0)
        self.act: Activation = get_activation(params.activation, ctx.store)
        self.data = self._load()
        self.n_train = len(self.data.train_labels)
        self.targets = np.eye(N_CLASSES)[self.data.train_labels]
        self.in_situ = params.mode == "in-situ"
        self.arrays: ArrayNetwork | None = None
        self.fnet: FloatNetwork | None = None
        self.phase = "fp" if (params.synapse == "fp" or not self.in_situ) else "dynamic"
        self.history: list[float] = []
        self.dynamic_epochs = 0
        self.switch_epoch: int | None = None
        self.total_resets = 0
        self.last_test = float("nan")
        self.check_every: list[int] = []
        track_rng = np.random.default_rng([self.seed, 7])
        last_rows = params.sizes[-2]
        n_track = min(params.track, last_rows * N_CLASSES)
        flat = (
            track_rng.choice(last_rows * N_CLASSES, size=n_track, replace=False)
            if n_track
            else np.zeros(0, int)
        )
        self.tracked = np.stack(np.divmod(flat, N_CLASSES), axis=1).astype(np.int64)

    def _load(self) -> Mnist:
        data = load_mnist(self.p.data_dir)
        n_tr, n_te = len(data.train_labels), len(data.test_labels)
        for name, limit, n in (
            ("train_limit", self.p.train_limit, n_tr),
            ("test_limit", self.p.test_limit, n_te),
        ):
            if limit is not None and limit > n:
                raise ConfigError(f"{name}: {limit} is more than the {n} images in {data.directory}")
        tl = self.p.train_limit or n_tr
        sl = self.p.test_limit or n_te
        return Mnist(
            _pool(data.train_images[:tl], self.p.input_pool),
            data.train_labels[:tl],
            _pool(data.test_images[:sl], self.p.input_pool),
            data.test_labels[:sl],
            data.directory,
        )

    # ------------------------------------------------------------------ helpers
    def initial_weights(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, 1])
        out = []
        for layer in range(1, self.p.n_layers + 1):
            fan_in = self.p.sizes[layer - 1] + (1 if self.p.bias else 0)
            a = self.p.init_scale / math.sqrt(fan_in)
            out.append(rng.uniform(-a, a, size=(fan_in, self.p.sizes[layer])))
        return out

    def _with_bias(self, x: np.ndarray) -> np.ndarray:
        if not self.p.bias:
            return x
        if x.ndim == 1:
            return np.append(x, 1.0)
        return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)

    def _output_delta(self, z: np.ndarray, out: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Error at the output: ``y - t`` (cross entropy of sigmoid outputs) or ``(y - t) f'(z)`` (MSE)."""
        if self.p.loss == "cross_entropy":
            return out - target
        return (out - target) * self.act.df(z, out)

    def evaluate(self, images: np.ndarray, labels: np.ndarray, on_arrays: bool) -> tuple[float, float]:
        """Accuracy (%) and MSE of the network on a data set, batched."""
        correct = 0
        sq = 0.0
        for start in range(0, len(labels), self.p.eval_batch):
            x = images[start : start + self.p.eval_batch].astype(float)
            for idx in range(self.p.n_layers):
                xb = self._with_bias(x)
                if on_arrays:
                    assert self.arrays is not None
                    z = self.arrays.layer_forward(self.arrays.layers[idx], xb)
                else:
                    assert self.fnet is not None
                    z = xb @ self.fnet.w[idx]
                x = self.act.f(z)
            lab = labels[start : start + self.p.eval_batch]
            correct += int(np.sum(np.argmax(x, axis=1) == lab))
            t = np.eye(N_CLASSES)[lab]
            sq += float(np.sum((x - t) ** 2))
        n = max(len(labels), 1)
        return 100.0 * correct / n, sq / (n * N_CLASSES)

    # ------------------------------------------------------------------ the run
    def run(self) -> None:
        ctx, p = self.ctx, self.p
        start_epoch = 1
        if ctx.resume_state and "epoch" in ctx.resume_state:
            start_epoch = self._resume(ctx.resume_state) + 1
        else:
            self._start()
        ctx.progress.start(p.epochs, f"{p.synapse} {'-'.join(map(str, p.sizes))} ({p.mode})")
        ctx.progress.advance(start_epoch - 1, status=self._status())
        for epoch in range(start_epoch, p.epochs + 1):
            self._epoch(epoch)
            ctx.progress.advance(1, status=self._status())
        if not self.in_situ and p.synapse != "fp":
            self._ex_situ_transfer(p.epochs + 1)

    def _status(self) -> str:
        if not self.history:
            return ""
        return f"train {self.history[-1]:.2f} % test {self.last_test:.2f} % ({self.phase})"

    def _start(self) -> None:
        p = self.p
        weights = self.initial_weights()
        record = EpochRecord(epoch={})
        if p.synapse != "fp" and self.in_situ:
            self.arrays = ArrayNetwork(self.ctx, p, np.random.default_rng([self.seed, 3]))
            snaps = self.arrays.calibrate()
            save_snapshots(self.ctx.store, self.ctx.run_id, -1, snaps)
            self.ctx.log_event(
                "calibrated",
                alpha={lay.index: lay.alpha for lay in self.arrays.layers},
                step_S={lay.names[k]: lay.step[k] for lay in self.arrays.layers for k in lay.names},
            )
            self.arrays.init_weights(weights)
        else:
            self.fnet = FloatNetwork(weights)
        self._commit(0, "init", record, wall=0.0, counters=EpochCounters())

    # ------------------------------------------------------------------ one epoch
    def _epoch(self, epoch: int) -> None:
        t0 = time.perf_counter()
        counters = EpochCounters()
        order = np.random.default_rng([self.seed, 2, epoch]).permutation(self.n_train)
        if self.arrays is not None:
            self.arrays.reset_stats()
            self._train_arrays(epoch, order, counters)
        else:
            self._train_float(epoch, order, counters)
        phase = self.phase
        record = EpochRecord(epoch={})
        self._commit(epoch, phase, record, wall=time.perf_counter() - t0, counters=counters)

    def _forward(
        self, image: np.ndarray, weighted_sums: Callable[[int, np.ndarray], np.ndarray]
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """One image through every layer: each layer's inputs (bias appended), weighted sums
        (``weighted_sums(layer index, inputs)``) and activations."""
        xs = [self._with_bias(image.astype(float))]
        zs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        last = self.p.n_layers - 1
        for idx in range(last + 1):
            z = weighted_sums(idx, xs[-1])
            y = self.act.f(z)
            zs.append(z)
            ys.append(y)
            if idx < last:
                xs.append(self._with_bias(y))
        return xs, zs, ys

    def _train_float(self, epoch: int, order: np.ndarray, counters: EpochCounters) -> None:
        assert self.fnet is not None
        w = self.fnet.w
        act, lr = self.act, self.p.lr
        images, targets, labels = self.data.train_images, self.targets, self.data.train_labels
        n_layers = self.p.n_layers
        last = n_layers - 1

        def weighted_sums(idx: int, x: np.ndarray) -> np.ndarray:
            if idx == 0:  # pixels: about 80 % zeros, skip their rows
                nz = np.flatnonzero(x)
                return x[nz] @ w[0][nz]
            return x @ w[idx]

        for s, n in enumerate(order):
            xs, zs, ys = self._forward(images[n], weighted_sums)
            out = ys[-1]
            counters.correct += int(np.argmax(out) == labels[n])
            delta = self._output_delta(zs[-1], out, targets[n])
            for idx in range(last, -1, -1):
                x = xs[idx]
                back = None
                if idx > 0:
                    back = (w[idx] @ delta)[: len(ys[idx - 1])]
                if idx == 0:
                    nz = np.flatnonzero(x)
                    w[idx][nz] -= lr * np.multiply.outer(x[nz], delta)
                else:
                    w[idx] -= lr * np.multiply.outer(x, delta)
                if back is not None:
                    delta = back * act.df(zs[idx - 1], ys[idx - 1])
            if self.tracked.size and s % self.p.track_interval == 0:
                self._track_float(epoch, s, counters)
        counters.samples = len(order)

    def _train_arrays(self, epoch: int, order: np.ndarray, counters: EpochCounters) -> None:
        net = self.arrays
        assert net is not None
        p = self.p
        act, phase = self.act, self.phase
        images, targets, labels = self.data.train_images, self.targets, self.data.train_labels
        layers = net.layers
        # inputs of layer 1 are pixels in [0, 1]; of the others, the activation's outputs
        nonneg = [True] + [bool(getattr(act, "nonnegative", False))] * (len(layers) - 1)
        longest = net.check_intervals()
        # adaptive occasional reset: a layer is checked more often while many of its pairs
        # need a reset (down to 1/16 of the longest interval, at least 4 samples), less often
        # when few do
        every = list(self.check_every) if self.check_every else list(longest)
        next_check = list(every)
        n_layers = len(layers)
        last = n_layers - 1

        def weighted_sums(idx: int, x: np.ndarray) -> np.ndarray:
            return net.layer_forward(layers[idx], x)

        for s, n in enumerate(order):
            xs, zs, ys = self._forward(images[n], weighted_sums)
            out = ys[-1]
            counters.correct += int(np.argmax(out) == labels[n])
            deltas: list[np.ndarray] = [np.zeros(0)] * n_layers
            delta = self._output_delta(zs[-1], out, targets[n])
            deltas[last] = delta
            for idx in range(last, 0, -1):
                delta = net.layer_backward(layers[idx], delta) * act.df(zs[idx - 1], ys[idx - 1])
                deltas[idx - 1] = delta
            measure = s % p.werror_interval == 0
            for idx in range(n_layers):
                if idx == last and measure:
                    self._update_measured(layers[idx], xs[idx], deltas[idx], phase, epoch, s, counters)
                else:
                    net.update(layers[idx], xs[idx], deltas[idx], phase, epoch, s, nonneg[idx])
            for li in range(n_layers):
                if s + 1 >= next_check[li]:
                    counters.resets += net.check_saturation(phase, epoch, s, [layers[li]])
                    frac = layers[li].last_reset_fraction
                    if frac > 0.01:
                        every[li] = max(max(4, longest[li] // 16), every[li] // 2)
                    elif frac < 0.002:
                        every[li] = min(longest[li], every[li] * 2)
                    next_check[li] = s + 1 + every[li]
            if self.tracked.size and s % p.track_interval == 0:
                self._track_arrays(epoch, s, counters)
        counters.resets += net.check_saturation(phase, epoch, len(order))
        counters.samples = len(order)
        self.check_every = every

    def _update_measured(self, lay: Layer, x: np.ndarray, delta: np.ndarray, phase: str, epoch: int, s: int,
                         counters: EpochCounters) -> None:  # fmt: skip
        """Update the last layer and measure ``|W_target - W|`` with reads before and after it."""
        net = self.arrays
        assert net is not None
        plus, minus = active_pair(phase)
        before = net.read(lay.names[plus]) - net.read(lay.names[minus])
        net.update(lay, x, delta, phase, epoch, s)
        after = net.read(lay.names[plus]) - net.read(lay.names[minus])
        # the weight change the pulses aim at: dW, times g's gain under fine_counts=same
        gain = lay.step[plus] / net.count_step(lay, plus)
        target = -self.p.lr * gain * np.multiply.outer(x, delta)
        err = np.abs(target - lay.alpha * (after - before))
        counters.werr_sum = err if counters.werr_sum is None else counters.werr_sum + err
        counters.werr_n += 1

    def _track_arrays(self, epoch: int, s: int, counters: EpochCounters) -> None:
        net = self.arrays
        assert net is not None
        lay = net.layers[-1]
        parts = {
            kind: net.backend.read(name, self.tracked, self.p.read_voltage_V).conductance_S
            for kind, name in lay.names.items()
        }
        big = lay.alpha * (parts["Gp"] - parts["Gm"])
        small = lay.alpha * (parts["gp"] - parts["gm"]) if "gp" in parts else None
        for i, (r, c) in enumerate(self.tracked):
            counters.track_rows.append({
                "sample": s, "layer": lay.index, "row": int(r), "col": int(c),
                "weight": float(big[i] + (small[i] if small is not None else 0.0)),
                "weight_big": float(big[i]), "weight_small": None if small is None else float(small[i]),
            })  # fmt: skip

    def _track_float(self, epoch: int, s: int, counters: EpochCounters) -> None:
        assert self.fnet is not None
        w = self.fnet.w[-1]
        for r, c in self.tracked:
            counters.track_rows.append({
                "sample": s, "layer": self.p.n_layers, "row": int(r), "col": int(c),
                "weight": float(w[r, c]), "weight_big": None, "weight_small": None,
            })  # fmt: skip

    # ------------------------------------------------------------------ commit
    def _commit(
        self, epoch: int, phase: str, record: EpochRecord, wall: float, counters: EpochCounters
    ) -> None:
        p = self.p
        on_arrays = self.arrays is not None
        train_acc, mse = self.evaluate(self.data.train_images, self.data.train_labels, on_arrays)
        test_acc, _ = self.evaluate(self.data.test_images, self.data.test_labels, on_arrays)
        self.last_test = test_acc
        prev = self.history[-1] if self.history else None
        self.history.append(train_acc)
        switched = False
        if epoch > 0 and self.phase == "dynamic" and p.synapse == "hybrid" and self.in_situ:
            self.dynamic_epochs += 1
            gain = train_acc - (prev if prev is not None else 0.0)
            due = self.dynamic_epochs >= p.min_dynamic_epochs and gain < p.switch_threshold_pp
            forced = p.max_dynamic_epochs is not None and self.dynamic_epochs >= p.max_dynamic_epochs
            if (due or forced) and epoch < p.epochs:
                switched = True
                self.phase = "fine"
                self.switch_epoch = epoch + 1
                self.ctx.log_event(
                    "phase-switch", after_epoch=epoch, gain_pp=gain, forced=bool(forced and not due)
                )
        self.total_resets += counters.resets
        row: dict[str, Any] = {
            "epoch": epoch, "phase": phase, "train_accuracy": train_acc, "test_accuracy": test_acc, "mse": mse,
            "online_accuracy": 100.0 * counters.correct / counters.samples if counters.samples else None,
            "samples": counters.samples, "resets": counters.resets, "switched": switched, "wall_s": wall,
        }  # fmt: skip
        if self.arrays is not None:
            net = self.arrays
            snaps = {}
            cells_total = 0
            for lay in net.layers:
                for kind, name in lay.names.items():
                    g = net.read(name)
                    lay.g_mean[kind] = float(g.mean())
                    snaps[(name, "conductance")] = g
                    st = net.stats[name]
                    size = lay.rows * lay.cols
                    cells_total += size
                    record.arrays.append({
                        "array": name, "program_calls": st.calls, "pulses": st.pulses,
                        "cells_programmed": st.cells, "update_frequency": st.cells / (size * counters.samples) if counters.samples else 0.0,
                        "resets": st.resets, "energy_J": st.energy_J, "update_time_parallel_s": st.time_parallel_s,
                        "update_time_serial_s": st.time_serial_s, "mean_conductance_S": lay.g_mean[kind],
                    })  # fmt: skip
            record.snapshots = snaps
            stats = list(net.stats.values())
            row["pulses"] = int(sum(s.pulses for s in stats))
            row["energy_J"] = float(sum(s.energy_J for s in stats))
            row["update_time_parallel_s"] = float(sum(s.time_parallel_s for s in stats))
            row["update_time_serial_s"] = float(sum(s.time_serial_s for s in stats))
            synapses = cells_total / len(net.layers[0].names)
            updated = sum(a["cells_programmed"] for a in record.arrays)
            row["update_frequency"] = updated / (synapses * counters.samples) if counters.samples else 0.0
            if counters.werr_sum is not None and counters.werr_n:
                mean_err = counters.werr_sum / counters.werr_n
                row["weight_error_mean"] = float(mean_err.mean())
                edges = np.concatenate([[0.0], np.logspace(-6, 1, 36)])
                hist, _ = np.histogram(np.clip(mean_err, 0, edges[-1]), bins=edges)
                record.weight_errors = [
                    {"layer": net.layers[-1].index, "bin_lo": float(lo), "bin_hi": float(hi), "count": int(c)}
                    for lo, hi, c in zip(edges[:-1], edges[1:], hist, strict=True)
                ]
        else:
            row["pulses"] = 0
        record.epoch = row
        record.tracked = [{**r} for r in counters.track_rows]
        if epoch == 0 and self.tracked.size:
            probe = EpochCounters()
            if self.arrays is not None:
                self._track_arrays(0, 0, probe)
            elif self.fnet is not None:
                self._track_float(0, 0, probe)
            record.tracked = probe.track_rows
        record.checkpoint = {
            "epoch": epoch, "phase": self.phase, "history": self.history, "dynamic_epochs": self.dynamic_epochs,
            "switch_epoch": self.switch_epoch, "total_resets": self.total_resets, "last_test": test_acc,
        }  # fmt: skip
        if self.fnet is not None and self.arrays is None:
            # the float network's state is its weights: keep them with the epoch for resume
            record.snapshots = {(f"fp_L{i + 1}", "weights"): w for i, w in enumerate(self.fnet.w)}
        commit_epoch(self.ctx.store, self.ctx.run_id, record)

    # ------------------------------------------------------------------ resume
    def _resume(self, state: dict[str, Any]) -> int:
        p = self.p
        epoch = int(state["epoch"])
        self.phase = str(state["phase"])
        self.history = [float(a) for a in state["history"]]
        self.dynamic_epochs = int(state.get("dynamic_epochs", 0))
        self.switch_epoch = state.get("switch_epoch")
        self.total_resets = int(state.get("total_resets", 0))
        self.last_test = float(state.get("last_test", float("nan")))
        store, run_id = self.ctx.store, self.ctx.run_id
        if p.synapse != "fp" and self.in_situ:
            net = ArrayNetwork(self.ctx, p, np.random.default_rng([self.seed, 3, epoch]))
            snaps = {}
            for lay in net.layers:
                for name in lay.read_names:
                    for kind in ("gmin", "gmax"):
                        m = load_snapshot(store, run_id, -1, name, kind)
                        if m is None:
                            raise ConfigError(
                                f"resume: run {run_id} has no {kind} calibration of array '{name}'"
                            )
                        snaps[(name, kind)] = m
            net.apply_calibration(snaps)
            for lay in net.layers:
                for kind, name in lay.names.items():
                    target = load_snapshot(store, run_id, epoch, name)
                    if target is None:
                        raise ConfigError(
                            f"resume: run {run_id} has no snapshot of '{name}' at epoch {epoch}"
                        )
                    net.write_verify_devices(lay, kind, target)
            self.arrays = net
        else:
            weights = []
            for i in range(p.n_layers):
                m = load_snapshot(store, run_id, epoch, f"fp_L{i + 1}", "weights")
                if m is None:
                    raise ConfigError(f"resume: run {run_id} has no float weights at epoch {epoch}")
                weights.append(m)
            self.fnet = FloatNetwork(weights)
        self.ctx.log_event("restored", epoch=epoch, phase=self.phase)
        return epoch

    # ------------------------------------------------------------------ ex-situ
    def _ex_situ_transfer(self, epoch: int) -> None:
        assert self.fnet is not None
        t0 = time.perf_counter()
        net = ArrayNetwork(self.ctx, self.p, np.random.default_rng([self.seed, 3]))
        snaps = net.calibrate()
        save_snapshots(self.ctx.store, self.ctx.run_id, -1, snaps)
        net.program_weights(self.fnet.w)
        self.arrays = net
        self.phase = "ex-situ"
        self._commit(
            epoch, "ex-situ", EpochRecord(epoch={}), wall=time.perf_counter() - t0, counters=EpochCounters()
        )
