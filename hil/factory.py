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
