"""Which simulated array a preset makes: synapses, synapses that wear out, or NDR neurons."""

from __future__ import annotations

from hil.types import ArraySpec
from sim_backend.array_model import TwinArray
from sim_backend.ndr_neuron import NeuronArray
from sim_backend.preset import DevicePreset
from sim_backend.wear import WearingTwinArray


def make_array(spec: ArraySpec, preset: DevicePreset, seed: int = 0) -> TwinArray | NeuronArray:
    """The simulated array for ``spec``: :class:`NeuronArray` when the preset has a ``neuron``
    block, :class:`WearingTwinArray` when it sets ``endurance_cycles``, else :class:`TwinArray`."""
    if preset.neuron is not None:
        return NeuronArray(spec, preset, seed)
    if preset.endurance_cycles is not None:
        return WearingTwinArray(spec, preset, seed)
    return TwinArray(spec, preset, seed)
