"""Build the backend a station describes, always wrapped in the safety layer."""

from __future__ import annotations

from hil.backend import Backend
from hil.errors import ConfigError
from hil.safety import SafeBackend
from hil.station import Station


def build_backend(station: Station, seed: int | None = None) -> Backend:
    """The raw backend of ``station`` (no safety layer). Prefer :func:`open_backend`."""
    if station.backend == "twin":
        from sim_backend.array_model import TwinTiming
        from sim_backend.preset import PresetError, load_preset
        from sim_backend.twin import TwinBackend

        cfg = station.twin
        assert cfg is not None
        try:
            preset = load_preset(cfg.preset)
            if cfg.overrides:
                preset = preset.with_overrides(**cfg.overrides)
            per_array = {a.name: load_preset(a.preset) for a in station.arrays if a.preset}
            for a in station.arrays:
                if a.overrides:
                    per_array[a.name] = per_array.get(a.name, preset).with_overrides(**a.overrides)
        except PresetError as exc:
            raise ConfigError(f"twin.{exc}") from None
        return TwinBackend(
            station.array_specs(),
            preset,
            seed=cfg.seed if seed is None else seed,
            timing=TwinTiming(read_time_s=cfg.read_time_s, pulse_gap_s=cfg.pulse_gap_s),
            presets=per_array,
        )
    try:
        from hil.hardware import build_hardware_backend
    except ImportError as exc:  # pragma: no cover - present once the hardware backend lands
        raise ConfigError(
            f"backend: '{station.backend}' is not available in this installation ({exc})"
        ) from None
    return build_hardware_backend(station)


def open_backend(station: Station, seed: int | None = None) -> SafeBackend:
    """The backend of ``station`` behind the station's safety limits. Use it as a context manager."""
    return SafeBackend(build_backend(station, seed), station.limits)


def twin_device_parameters(station: Station, array: str | None = None) -> dict[str, object]:
    """The twin device parameters (preset after the station's overrides, and the array's own
    preset and overrides when ``array`` is given) as a plain dict, for protocols that derive
    per-array overrides from them without importing the twin.

    Raises:
        ConfigError: not a twin station, or the preset cannot be loaded.
    """
    if station.backend != "twin" or station.twin is None:
        raise ConfigError(f"station: '{station.name}' is not a twin station")
    from sim_backend.preset import PresetError, load_preset

    try:
        preset = load_preset(station.twin.preset)
        if station.twin.overrides:
            preset = preset.with_overrides(**station.twin.overrides)
        for a in station.arrays:
            if a.name == array:
                if a.preset:
                    preset = load_preset(a.preset)
                if a.overrides:
                    preset = preset.with_overrides(**a.overrides)
    except PresetError as exc:
        raise ConfigError(f"twin.{exc}") from None
    return preset.model_dump()
