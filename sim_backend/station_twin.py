"""The one way to build a twin from a station, used by the direct twin backend, the SMU + matrix
emulators and the board emulator alike.

The twin's device parameters come from the station's ``twin`` section (a preset and its
``overrides``; the defaults when a hardware station has none), then, per array, the array's own
``preset`` and ``overrides``. A hardware station's emulated bench therefore has exactly the
devices a twin station with the same arrays has.
"""

from __future__ import annotations

from hil.errors import ConfigError
from hil.station import ArrayConfig, Station, TwinConfig
from hil.types import ArrayRequest
from sim_backend.array_model import TwinTiming
from sim_backend.preset import DevicePreset, PresetError, load_preset
from sim_backend.twin import TwinBackend


def twin_config(station: Station) -> TwinConfig:
    """The station's ``twin`` section, or the defaults (a hardware station's emulated bench)."""
    return station.twin or TwinConfig()


def station_preset(station: Station) -> DevicePreset:
    """The preset of the station's twin after the station's ``twin.overrides``."""
    cfg = twin_config(station)
    try:
        preset = load_preset(cfg.preset)
        return preset.with_overrides(**cfg.overrides) if cfg.overrides else preset
    except PresetError as exc:
        raise ConfigError(f"twin.{exc}") from None


def array_presets(station: Station, base: DevicePreset | None = None) -> dict[str, DevicePreset]:
    """The arrays whose devices differ from the station's preset: their own preset, then overrides."""
    base = base or station_preset(station)
    presets: dict[str, DevicePreset] = {}
    for a in station.arrays:
        try:
            if a.preset:
                presets[a.name] = load_preset(a.preset)
            if a.overrides:
                presets[a.name] = presets.get(a.name, base).with_overrides(**a.overrides)
        except PresetError as exc:
            raise ConfigError(f"twin.{exc}") from None
    return presets


def twin_from_station(station: Station, seed: int | None = None) -> TwinBackend:
    """The twin of ``station``: its arrays in the station's order, its devices, its seed
    (``seed`` replaces ``twin.seed``)."""
    cfg = twin_config(station)
    preset = station_preset(station)
    return TwinBackend(
        station.array_specs(),
        preset,
        seed=cfg.seed if seed is None else seed,
        timing=TwinTiming(read_time_s=cfg.read_time_s, pulse_gap_s=cfg.pulse_gap_s),
        presets=array_presets(station, preset),
    )


def fabricate(station: Station, requests: list[ArrayRequest] | tuple[ArrayRequest, ...], protocol: str) -> Station:
    """``station`` with every requested array fabricated as asked (twin stations).

    An array the station already declares keeps its shape (a different one is an error) and its
    own overrides, which win over the request's.
    """
    base = station_preset(station)
    have = {a.name: i for i, a in enumerate(station.arrays)}
    arrays = list(station.arrays)
    for request in requests:
        spec = request.spec
        own = base
        if spec.name in have:
            cfg = arrays[have[spec.name]]
            if (cfg.rows, cfg.cols) != (spec.rows, spec.cols):
                raise ConfigError(
                    f"station: array '{spec.name}' is {cfg.rows} x {cfg.cols}, protocol "
                    f"'{protocol}' needs {spec.rows} x {spec.cols}"
                )
            if cfg.preset:
                own = load_preset(cfg.preset)
        overrides = device_overrides(own, request)
        if spec.name in have:
            cfg = arrays[have[spec.name]]
            if overrides:
                arrays[have[spec.name]] = cfg.model_copy(update={"overrides": {**overrides, **cfg.overrides}})
            continue
        arrays.append(
            ArrayConfig(
                name=spec.name, rows=spec.rows, cols=spec.cols, area_m2=spec.device_area_m2, overrides=overrides
            )
        )
        have[spec.name] = len(arrays) - 1
    return station.model_copy(update={"arrays": arrays})


def with_windows(station: Station) -> Station:
    """``station`` with every array's ``window_S`` filled in from its twin devices (the nominal
    ``(Gmin, Gmax)`` of its preset and overrides at its device area) where it declares none."""
    base = station_preset(station)
    presets = array_presets(station, base)
    arrays = [
        a
        if a.window_S is not None
        else a.model_copy(update={"window_S": presets.get(a.name, base).g_range_S(a.device_area_m2)})
        for a in station.arrays
    ]
    return station.model_copy(update={"arrays": arrays})


def device_overrides(preset: DevicePreset, request: ArrayRequest) -> dict[str, object]:
    """The preset overrides that give ``preset``'s devices what ``request`` asks for."""
    device = request.device
    overrides: dict[str, object] = {}
    if device.n_states is not None:
        overrides["n_states"] = device.n_states
    overrides.update(device.variability())
    if device.window_scale is not None and device.window_scale != 1:
        overrides["g_max_S"] = preset.g_min_S + (preset.g_max_S - preset.g_min_S) * device.window_scale
    return overrides
