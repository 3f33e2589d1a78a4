"""A negative-differential-resistance (NDR) neuron device for the twin (after Yang et al. 2024).

Yang et al. (Adv. Funct. Mater. 2024, doi 10.1002/adfm.202405618) build neurons from devices
whose current first rises with voltage, then falls (negative differential resistance), then rises
again: a dendrite-like, non-monotonic activation. Their abstract gives no I-V numbers, so the model
here is the standard empirical tunnel-diode form, with every value ASSUMED::

    I(V) = sign(V) * [ I_p * (|V| / V_p) * exp(1 - |V| / V_p) + G_v * |V| ]

``I_p`` is the peak current at the peak voltage ``V_p``, ``G_v`` the conductance of the branch that
takes over beyond the valley. ``dI/dV < 0`` between the peak and the valley. ``I_p`` and ``G_v``
scale with device area like every other conductance of the preset, and each device's current is
scaled by ``1 + d2d_sigma * z`` (device-to-device spread); reads carry the preset's read noise.
With ``symmetric: false`` the negative branch is ohmic at ``G_v``.

A neuron device is not programmable: pulses leave it unchanged. An array of neuron devices is
declared in a station with a preset whose ``neuron`` block is set (``ndr_neuron_yang2024``)::

    arrays:
      - {name: NEURON, rows: 1, cols: 8, diameter_m: 1.0e-6, preset: ndr_neuron_yang2024}

:func:`sim_backend.devices.make_array` picks :class:`NeuronArray` for such a preset.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from hil.types import ArraySpec

if TYPE_CHECKING:
    from sim_backend.preset import DevicePreset


class NDRNeuronModel(BaseModel):
    """Parameters of the NDR neuron's I-V curve at the preset's reference diameter (SI units)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    peak_voltage_V: float = Field(0.8, gt=0, le=50, description="voltage of the current peak (V)")
    peak_current_A: float = Field(20e-6, gt=0, le=1, description="peak current at the reference diameter (A)")
    valley_conductance_S: float = Field(
        2e-6, ge=0, le=1, description="conductance of the branch beyond the valley (S)"
    )
    symmetric: bool = Field(True, description="odd I-V (NDR in both polarities); else ohmic at negative V")


def ndr_current(voltage_V: np.ndarray | float, model: NDRNeuronModel, scale: float = 1.0) -> np.ndarray:
    """Current (A) of an NDR device at ``voltage_V`` (closed form in the module docstring)."""
    v = np.asarray(voltage_V, dtype=float)
    a = np.abs(v)
    peak = model.peak_current_A * (a / model.peak_voltage_V) * np.exp(1.0 - a / model.peak_voltage_V)
    forward = peak + model.valley_conductance_S * a
    if model.symmetric:
        return scale * np.sign(v) * forward
    return scale * np.where(v >= 0, forward, model.valley_conductance_S * v)


class NeuronArray:
    """An array of NDR neuron devices with the interface :class:`~sim_backend.twin.TwinBackend` uses.

    ``conductance`` is the chord conductance ``I(V_read) / V_read`` at the preset's read voltage.
    """

    def __init__(self, spec: ArraySpec, preset: DevicePreset, seed: int = 0) -> None:
        if preset.neuron is None:
            raise ValueError(f"preset '{preset.name}' has no neuron model")
        self.spec = spec
        self.preset = preset
        self.model: NDRNeuronModel = preset.neuron
        seq = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(spec.name.encode())])
        fab, prog, read = seq.spawn(3)
        self.prog_rng = np.random.default_rng(prog)
        self.read_rng = np.random.default_rng(read)
        area = preset.area_scale(spec.device_area_m2)
        z = np.random.default_rng(fab).standard_normal(spec.shape)
        #: per-device current scale: area scaling times device-to-device spread
        self.scale = area * np.maximum(1.0 + preset.d2d_sigma * z, 0.05)
        v_r = preset.read_reference_V
        self._g_unit = float(ndr_current(v_r, self.model)) / v_r  # chord conductance of scale 1 (S)
        self.formed = np.ones(spec.shape, dtype=bool)
        self.stuck = np.zeros(spec.shape, dtype=bool)

    def _scale(self, idx: np.ndarray | None) -> np.ndarray:
        flat = self.scale.reshape(-1)
        return flat if idx is None else flat[idx]

    def conductance(self, t: float, idx: np.ndarray | None = None) -> np.ndarray:
        """Chord conductance (S) at the read reference voltage, flat over ``idx``."""
        return self._g_unit * self._scale(idx)

    def conductance_matrix(self, t: float) -> np.ndarray:
        return self.conductance(t).reshape(self.spec.shape)

    def apply_pulses(
        self, idx: np.ndarray | None, amplitude_V: float, width_s: float, count: np.ndarray | int, t: float
    ) -> None:
        """Neuron devices do not program: nothing changes."""
        return None

    def read_current(self, idx: np.ndarray | None, voltage_V: float, t: float) -> np.ndarray:
        i = self._scale(idx) * float(ndr_current(voltage_V, self.model))
        noise = self.preset.read_noise_rel
        if noise > 0:
            i = i * (1.0 + noise * self.read_rng.standard_normal(i.shape))
        return i

    def vmm(self, voltages_V: np.ndarray, direction: str, t: float) -> tuple[np.ndarray, np.ndarray | None]:
        """Summed device currents: each device conducts ``scale * I(V_in)`` of its own input."""
        base = ndr_current(voltages_V, self.model)  # (..., n_in)
        gm = self.scale if direction == "forward" else self.scale.T
        current = base @ gm
        var = None
        if self.preset.read_noise_rel > 0:
            var = (self.preset.read_noise_rel**2) * ((base * base) @ (gm * gm))
        return current, var

    def device_current(self, g: float, voltage_V: float) -> float:
        """Current (A) at ``voltage_V`` of the device whose chord conductance is ``g`` (S)."""
        return float(ndr_current(voltage_V, self.model, g / self._g_unit))

    def compliance_voltage(self, g: float, compliance_A: float) -> float:
        """Smallest |V| (V) at which the device of conductance ``g`` draws ``compliance_A``."""
        scale = g / self._g_unit
        hi = self.model.peak_voltage_V
        target = compliance_A / scale
        if float(ndr_current(hi, self.model)) < target:
            # past the peak: the rising branch beyond the valley reaches the compliance
            hi = max(hi, 1.0)
            while float(ndr_current(hi, self.model)) < target and hi < 1e6:
                hi *= 2.0
        lo = 0.0
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if float(ndr_current(mid, self.model)) < target:
                lo = mid
            else:
                hi = mid
        return hi

    def noisy(self, current: float) -> float:
        noise = self.preset.read_noise_rel
        if noise == 0:
            return current
        return current * (1.0 + noise * float(self.read_rng.standard_normal()))


def peak_of(model: NDRNeuronModel) -> tuple[float, float]:
    """``(V_p, I(V_p))`` of the model at scale 1: the current peak (V, A)."""
    return model.peak_voltage_V, float(ndr_current(model.peak_voltage_V, model))
