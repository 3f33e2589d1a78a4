"""Device presets: the named, documented parameter sets of the simulated twin.

A preset describes one device technology at a *reference diameter*; conductances scale with
device area as ``(area / reference_area) ** area_exponent`` (1 for interfacial switching, where
the current density does not depend on area). Presets ship as YAML files in
``sim_backend/presets/`` and users load their own with :func:`load_preset`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hil.yaml_loader import load_yaml
from sim_backend.ndr_neuron import NDRNeuronModel

PRESET_DIR = Path(__file__).with_name("presets")


class PresetError(ValueError):
    """A preset that cannot be found or does not validate."""


class DevicePreset(BaseModel):
    """Parameters of the twin's RRAM device model (SI units).

    Pulse response: a pulse of amplitude ``V`` and width ``w`` counts as
    ``s = (w / reference_width_s) ** width_exponent * exp((|V| - reference_V) / voltage_acceleration_V)``
    nominal steps when ``|V|`` is at or above the polarity's threshold, and as nothing below it.
    A nominal step on the normalised state ``x = (G - Gmin) / (Gmax - Gmin)`` is the exact map
    ``x' = a x + b`` with ``a = exp(-nu / n_states)`` and ``b = (1 - a) / (1 - exp(-nu))``
    (``x' = x + 1 / n_states`` when ``nu = 0``): ``n_states`` identical nominal pulses take a
    device from Gmin to Gmax, and ``nu`` bends the curve (larger steps first).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="preset name")
    description: str = Field("", description="what the preset models and where its numbers come from")
    source: str = Field("", description="citation the values are traced to")

    # --- conductance range and its area scaling
    reference_diameter_m: float = Field(
        1e-6, gt=0, le=1e-3, description="diameter the conductances refer to (m)"
    )
    g_min_S: float = Field(
        gt=0, description="low-conductance bound at the reference diameter (S, read at read_reference_V)"
    )
    g_max_S: float = Field(gt=0, description="high-conductance bound at the reference diameter (S)")
    area_exponent: float = Field(
        1.0, ge=0, le=2, description="G scales as area**area_exponent (1: interfacial switching)"
    )
    min_diameter_m: float = Field(30e-9, gt=0, description="smallest diameter the model is traced to (m)")
    max_diameter_m: float = Field(1e-6, gt=0, description="largest diameter the model is traced to (m)")

    # --- finite states and pulse response
    n_states: int = Field(50, ge=2, le=100_000, description="nominal pulses from Gmin to Gmax")
    nonlinearity_potentiation: float = Field(0.0, ge=0, le=20, description="nu of potentiation (0: linear)")
    nonlinearity_depression: float = Field(0.0, ge=0, le=20, description="nu of depression (0: linear)")
    set_threshold_V: float = Field(1.0, gt=0, description="smallest positive amplitude that potentiates (V)")
    set_reference_V: float = Field(2.0, gt=0, description="positive amplitude of one nominal step (V)")
    reset_threshold_V: float = Field(
        1.0, gt=0, description="smallest |negative amplitude| that depresses (V)"
    )
    reset_reference_V: float = Field(2.0, gt=0, description="|negative amplitude| of one nominal step (V)")
    reference_width_s: float = Field(100e-6, gt=0, description="pulse width of one nominal step (s)")
    voltage_acceleration_V: float = Field(
        0.5, gt=0, description="amplitude above the reference that multiplies the step by e (V)"
    )
    width_exponent: float = Field(0.5, ge=0, le=1, description="step grows as width**width_exponent")

    # --- variability and defects
    c2c_sigma_over_mu: float = Field(0.34, ge=0, le=10, description="cycle-to-cycle sigma/mu of the step dG")
    d2d_sigma: float = Field(0.05, ge=0, le=5, description="device-to-device sigma of Gmin, relative to Gmin")
    d2d_range_sigma: float = Field(
        0.0, ge=0, le=5, description="device-to-device sigma of (Gmax - Gmin), relative to it"
    )
    stuck_fraction: float = Field(0.0, ge=0, le=1, description="fraction of cells that never switch")
    stuck_on_fraction: float = Field(
        0.5, ge=0, le=1, description="of stuck cells, the fraction stuck at Gmax"
    )
    read_noise_rel: float = Field(
        0.0, ge=0, le=1, description="sigma of read noise, relative to the read current"
    )

    # --- DC conduction
    read_reference_V: float = Field(0.5, gt=0, description="read voltage at which G is defined (V)")
    iv_v0_V: float | None = Field(
        None,
        gt=0,
        description="I-V nonlinearity: I = G * V_r * sinh(V/V0) / sinh(V_r/V0); None is ohmic (V)",
    )

    # --- retention
    retention_tau_s: float | None = Field(
        None,
        gt=0,
        description="time constant of the drift of G towards Gmin after programming (s); None: none",
    )

    # --- forming
    forming_free: bool = Field(True, description="devices are formed as fabricated")
    forming_voltage_V: float = Field(3.0, gt=0, description="voltage at which a pristine device forms (V)")
    pristine_conductance_ratio: float = Field(
        0.01, gt=0, le=1, description="conductance of a pristine device relative to Gmin"
    )

    # --- endurance (sim_backend/wear.py)
    endurance_cycles: float | None = Field(
        None,
        gt=0,
        description="median full switching cycles (Gmin-Gmax-Gmin) before a device sticks; None: never",
    )
    endurance_sigma: float = Field(
        0.3, ge=0, le=5, description="log-normal sigma of the device-to-device endurance"
    )

    # --- neuron devices (sim_backend/neuron.py)
    neuron: NDRNeuronModel | None = Field(
        None, description="an NDR neuron device instead of a synapse (I-V model); None: a synapse"
    )

    @model_validator(mode="after")
    def _check(self) -> DevicePreset:
        if self.g_max_S <= self.g_min_S:
            raise ValueError(f"g_max_S = {self.g_max_S:g} S must be > g_min_S = {self.g_min_S:g} S")
        if self.set_reference_V < self.set_threshold_V:
            raise ValueError("set_reference_V must be >= set_threshold_V")
        if self.reset_reference_V < self.reset_threshold_V:
            raise ValueError("reset_reference_V must be >= reset_threshold_V")
        return self

    # ------------------------------------------------------------------ derived quantities
    @property
    def reference_area_m2(self) -> float:
        return math.pi * (self.reference_diameter_m / 2) ** 2

    def area_scale(self, area_m2: float) -> float:
        """Conductance scale factor of a device of ``area_m2`` relative to the reference device."""
        return (area_m2 / self.reference_area_m2) ** self.area_exponent

    def g_range_S(self, area_m2: float) -> tuple[float, float]:
        """Nominal ``(Gmin, Gmax)`` (S) of a device of ``area_m2``."""
        s = self.area_scale(area_m2)
        return self.g_min_S * s, self.g_max_S * s

    def step_S(self, area_m2: float) -> float:
        """Mean conductance step (S) of one nominal linear pulse for a device of ``area_m2``."""
        lo, hi = self.g_range_S(area_m2)
        return (hi - lo) / self.n_states

    def with_overrides(self, **changes: Any) -> DevicePreset:
        """A validated copy with some parameters changed (unknown names are an error)."""
        try:
            return DevicePreset.model_validate({**self.model_dump(), **changes})
        except ValidationError as exc:
            raise PresetError(_one_line(exc)) from None


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "preset"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def available_presets() -> list[str]:
    """Names of the presets shipped with the package."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: str | Path) -> DevicePreset:
    """Load a shipped preset by name, or a user preset from a YAML file.

    Raises:
        PresetError: unknown name, unreadable file, or values that do not validate.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = PRESET_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise PresetError(
                f"preset: '{name_or_path}' is not a shipped preset ({', '.join(available_presets())}) "
                "nor a .yaml file"
            )
    try:
        data = load_yaml(path.read_text())
    except OSError as exc:
        raise PresetError(f"preset: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise PresetError(f"preset: {path} is not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        raise PresetError(f"preset: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise PresetError(f"preset: {path} must hold a mapping of parameters")
    try:
        return DevicePreset.model_validate(data)
    except ValidationError as exc:
        raise PresetError(f"preset {path.name}: {_one_line(exc)}") from None
