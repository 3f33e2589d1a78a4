"""Station configuration: which backend, which instruments, which arrays, which safety limits.

A station is a YAML file validated by pydantic. The built-in twin station
(``hil/stations/twin.yaml``) is the default of every command. Example::

    name: my-bench
    backend: twin            # twin | smu-matrix | board
    twin: {preset: mo_tiox_choi2021, overrides: {c2c_sigma_over_mu: 0.2}}
    arrays:
      - {name: A, rows: 32, cols: 32, diameter_m: 1.0e-6}
    limits: {max_abs_voltage_V: 5.0, max_compliance_A: 1.0e-3}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hil.errors import ConfigError, format_validation_error
from hil.safety import SafetyLimits
from hil.types import ArraySpec
from hil.yaml_loader import load_yaml

STATION_DIR = Path(__file__).with_name("stations")
BackendKind = Literal["twin", "smu-matrix", "board"]


class InstrumentConfig(BaseModel):
    """One instrument: its driver model and its VISA or serial resource string."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="driver model, e.g. keithley2450, keithley2600, b2900, keithley707b, e5250a, board"
    )
    resource: str = Field(description="VISA resource string or serial port")
    options: dict[str, Any] = Field(
        default_factory=dict, description="driver options (timeouts, baud rate, ...)"
    )


class ArrayConfig(BaseModel):
    """One crossbar array: name, shape, device size and (on hardware) its routing."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.+-]+$")
    rows: int = Field(ge=1, le=8192)
    cols: int = Field(ge=1, le=8192)
    diameter_m: float | None = Field(None, gt=0, le=1e-2, json_schema_extra={"unit": "m"})
    area_m2: float | None = Field(None, gt=0, le=1e-4, json_schema_extra={"unit": "m^2"})
    preset: str | None = Field(
        None, description="twin only: a preset for this array instead of the station's"
    )
    overrides: dict[str, Any] = Field(
        default_factory=dict,
        description="twin only: preset parameters changed for this array (after the station's overrides)",
    )
    routing: dict[str, Any] | None = Field(
        None, description="hardware only: how rows/cols reach the instruments"
    )
    window_S: tuple[float, float] | None = Field(
        None,
        description=(
            "calibrated conductance window (Gmin, Gmax) of the array's devices (S), e.g. from "
            "`rram-hil analyze` of a cycling run; the twin fills in its own; protocols refuse targets outside it"
        ),
        json_schema_extra={"unit": "S"},
    )

    @model_validator(mode="after")
    def _one_size(self) -> ArrayConfig:
        if (self.diameter_m is None) == (self.area_m2 is None):
            raise ValueError("give exactly one of diameter_m or area_m2")
        if self.window_S is not None and not 0 <= self.window_S[0] < self.window_S[1] <= 1:
            raise ValueError(f"window_S must be (Gmin, Gmax) with 0 <= Gmin < Gmax <= 1 S, got {list(self.window_S)}")
        return self

    @property
    def device_area_m2(self) -> float:
        if self.area_m2 is not None:
            return self.area_m2
        assert self.diameter_m is not None
        return ArraySpec.area_from_diameter(self.diameter_m)

    def spec(self) -> ArraySpec:
        return ArraySpec(self.name, self.rows, self.cols, self.device_area_m2)


class TwinConfig(BaseModel):
    """The simulated twin: device preset (a shipped name or a YAML path), overrides, seed."""

    model_config = ConfigDict(extra="forbid")

    preset: str = "mo_tiox_choi2021"
    overrides: dict[str, Any] = Field(default_factory=dict)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    read_time_s: float = Field(1e-4, gt=0, json_schema_extra={"unit": "s"})
    pulse_gap_s: float = Field(1e-6, ge=0, json_schema_extra={"unit": "s"})


class Station(BaseModel):
    """A complete station description."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    backend: BackendKind = "twin"
    twin: TwinConfig | None = None
    instruments: dict[str, InstrumentConfig] = Field(default_factory=dict)
    arrays: list[ArrayConfig] = Field(min_length=1)
    limits: SafetyLimits = Field(default_factory=SafetyLimits)
    source: str | None = Field(None, exclude=True, description="file this station was loaded from")

    @model_validator(mode="after")
    def _consistent(self) -> Station:
        names = [a.name for a in self.arrays]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"array names must be unique (repeated: {', '.join(dupes)})")
        if self.backend == "twin" and self.twin is None:
            self.twin = TwinConfig()
        if self.backend != "twin" and not self.instruments:
            raise ValueError(f"backend '{self.backend}' needs an 'instruments' section")
        return self

    def array_specs(self) -> list[ArraySpec]:
        return [a.spec() for a in self.arrays]

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy of everything that defines this station (stored with every run)."""
        return self.model_dump(mode="json")

    def with_arrays(self, extra: list[ArraySpec]) -> Station:
        """A copy with more arrays (used by protocols that fabricate arrays on the twin)."""
        have = {a.name for a in self.arrays}
        added = [
            ArrayConfig(name=s.name, rows=s.rows, cols=s.cols, area_m2=s.device_area_m2)
            for s in extra
            if s.name not in have
        ]
        return self.model_copy(update={"arrays": [*self.arrays, *added]})


def parse_station(data: Any, source: str = "station") -> Station:
    """Validate a station mapping; errors become one-line :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a station must be a YAML mapping, got {type(data).__name__}")
    try:
        station = Station.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc, Station)}") from None
    station.source = source
    return station


def load_station(path: str | Path | None = None) -> Station:
    """Load a station YAML file; ``None`` or ``"twin"`` gives the built-in twin station."""
    if path is None or str(path) in ("twin", "builtin", "builtin:twin"):
        path = STATION_DIR / "twin.yaml"
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(f"station: file '{p}' does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"station: '{p}' is a directory, not a station YAML file") from None
    except OSError as exc:
        raise ConfigError(f"station: cannot read '{p}': {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"station: '{p}' is not a text (YAML) file") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(
            f"station: '{p}' is not valid YAML{where}: {getattr(exc, 'problem', exc)}"
        ) from None
    return parse_station(data, str(p))
