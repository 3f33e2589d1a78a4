"""Where a network lives on the station: one array per device kind and layer, and its devices.

Layer ``l`` (1-based) of ``inputs -> outputs`` neurons uses the arrays ``L{l}_Gp, L{l}_Gm`` (and
``L{l}_gp, L{l}_gm`` for the hybrid synapse), each of shape ``(inputs + bias, outputs)``; the g
arrays have devices k times smaller in area. :func:`device_request` says what each array asks of
its devices (a twin fabricates them so; hardware has what it has). :class:`Layer` is one layer's
arrays and their calibration once they are on a backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hil.types import ArraySpec, DeviceRequest
from protocols.training.params import DeviceParams, HybridTrainingParams

#: Sign of each device kind in the weight ``W = a ((G+ - G-) + (g+ - g-))``.
SIGNS = {"Gp": 1.0, "Gm": -1.0, "gp": 1.0, "gm": -1.0}


def array_name(layer: int, kind: str) -> str:
    """The station array of ``kind`` (Gp, Gm, gp, gm) in ``layer`` (1-based): ``L1_Gp``."""
    return f"L{layer}_{kind}"


def layer_rows(params: HybridTrainingParams, layer: int) -> int:
    """Rows of ``layer``'s arrays (1-based): its inputs, plus the bias row."""
    return params.sizes[layer - 1] + (1 if params.bias else 0)


def needed_arrays(params: HybridTrainingParams) -> list[ArraySpec]:
    """The arrays a run needs: per layer ``(inputs + bias, outputs)``; g arrays k times smaller."""
    specs = []
    big = ArraySpec.area_from_diameter(params.big_diameter_m)
    for layer in range(1, params.n_layers + 1):
        rows = layer_rows(params, layer)
        cols = params.sizes[layer]
        for kind in params.kinds():
            area = big if kind.startswith("G") else big / params.k
            specs.append(ArraySpec(array_name(layer, kind), rows, cols, area))
    return specs


def device_request(params: DeviceParams, array: str) -> DeviceRequest:
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


@dataclass
class Layer:
    """One layer's arrays on the backend and their calibration (conductances in S).

    Attributes:
        index: the layer, 1-based.
        rows, cols: the shape of each of its arrays (inputs + bias, outputs).
        names: the array of each device kind (``{"Gp": "L1_Gp", ...}``).
        alpha: the weight per siemens (the read-out gain ``a``), shared by all its arrays.
        gmin, gmax: each kind's calibrated conductance window per cell (S).
        step: each kind's mean conductance change per potentiation pulse (S).
        g_mean: each kind's mean conductance at its last read (S), for energy estimates.
        states: each kind's number of conductance states (pulses across the window).
        last_reset_fraction: the fraction of pairs the last saturation check reset.
    """

    index: int
    rows: int
    cols: int
    names: dict[str, str]
    alpha: float = 1.0
    gmin: dict[str, np.ndarray] = field(default_factory=dict)
    gmax: dict[str, np.ndarray] = field(default_factory=dict)
    step: dict[str, float] = field(default_factory=dict)
    g_mean: dict[str, float] = field(default_factory=dict)
    states: dict[str, int] = field(default_factory=dict)
    last_reset_fraction: float = 0.0

    @property
    def read_names(self) -> list[str]:
        """The layer's arrays, in kind order (the order of a VMM over them)."""
        return list(self.names.values())

    @property
    def read_signs(self) -> list[float]:
        """The sign of each array of :attr:`read_names` in the weight."""
        return [SIGNS[k] for k in self.names]


def layers_of(params: HybridTrainingParams) -> list[Layer]:
    """The (uncalibrated) layers of a network with ``params``' sizes and synapse."""
    layers = []
    for layer in range(1, params.n_layers + 1):
        names = {kind: array_name(layer, kind) for kind in params.kinds()}
        lay = Layer(layer, layer_rows(params, layer), params.sizes[layer], names)
        for kind in names:
            lay.states[kind] = params.states if kind.startswith("G") else params.small_states
        layers.append(lay)
    return layers
