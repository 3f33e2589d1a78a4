"""Which simulated array a preset makes: synapses, synapses that wear out, or NDR neurons."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from hil.types import ArraySpec
from sim_backend.array_model import TwinArray
from sim_backend.ndr_neuron import NeuronArray
from sim_backend.preset import DevicePreset
from sim_backend.wear import WearingTwinArray


class SimArray(Protocol):
    """What :class:`~sim_backend.twin.TwinBackend` and the wire-level emulators use of a simulated
    array, whichever kind :func:`make_array` made (:class:`TwinArray` or :class:`NeuronArray`).

    Flat cell indices (``idx``) address every cell when ``None``; times ``t`` are simulated (s).
    """

    spec: ArraySpec
    preset: DevicePreset
    read_rng: np.random.Generator
    prog_rng: np.random.Generator
    formed: np.ndarray
    stuck: np.ndarray

    def conductance(self, t: float, idx: np.ndarray | None = None) -> np.ndarray: ...

    def conductance_matrix(self, t: float) -> np.ndarray: ...

    def apply_pulses(
        self, idx: np.ndarray | None, amplitude_V: float, width_s: float, count: np.ndarray | int, t: float
    ) -> None: ...

    def read_current(self, idx: np.ndarray | None, voltage_V: float, t: float) -> np.ndarray: ...

    def vmm(
        self, voltages_V: np.ndarray, direction: str, t: float
    ) -> tuple[np.ndarray, np.ndarray | None]: ...

    def device_current(self, g: float, voltage_V: float) -> float: ...

    def compliance_voltage(self, g: float, compliance_A: float) -> float: ...

    def noisy(self, current: float) -> float: ...


def make_array(spec: ArraySpec, preset: DevicePreset, seed: int = 0) -> TwinArray | NeuronArray:
    """The simulated array for ``spec``: :class:`NeuronArray` when the preset has a ``neuron``
    block, :class:`WearingTwinArray` when it sets ``endurance_cycles``, else :class:`TwinArray`."""
    if preset.neuron is not None:
        return NeuronArray(spec, preset, seed)
    if preset.endurance_cycles is not None:
        return WearingTwinArray(spec, preset, seed)
    return TwinArray(spec, preset, seed)
