"""One twin builder for every path: the direct twin, the SMU + matrix emulators and the board
emulator build the same devices from a station, per-array overrides included; the twin kind
fabricates the arrays a protocol asks for, a hardware kind checks them."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from hil.backends import backend_kind, build_backend
from hil.engine import prepare
from hil.errors import ConfigError
from hil.station import load_station, parse_station
from hil.types import ArrayRequest, ArraySpec, DeviceRequest
from sim_backend.emulators.board import twin_for_station
from sim_backend.emulators.launcher import launch_station
from sim_backend.station_twin import twin_from_station
from tests.helpers import board_station, station_dict

G_MAX_OVERRIDE_S = 1e-3


def _with_array_override(data: dict) -> dict:
    data = copy.deepcopy(data)
    data["arrays"][0]["overrides"] = {"g_max_S": G_MAX_OVERRIDE_S}
    return data


def test_station_per_array_overrides_reach_the_emulated_smu_matrix_bench() -> None:
    station = parse_station(_with_array_override(station_dict()))
    direct = twin_from_station(station)
    bench = launch_station(station, free_ports=True)  # built, not started: its twin is what it emulates
    assert direct.model("A").preset.g_max_S == G_MAX_OVERRIDE_S
    assert bench.twin.model("A").preset.g_max_S == G_MAX_OVERRIDE_S
    assert bench.twin.model("A").preset == direct.model("A").preset
    # the same devices: fabrication draws are the same, cell by cell
    assert np.array_equal(bench.twin.model("A").g_lo, direct.model("A").g_lo)


def test_station_per_array_overrides_reach_the_emulated_board() -> None:
    station = board_station()
    data = station.snapshot()
    data["arrays"][0]["overrides"] = {"g_max_S": G_MAX_OVERRIDE_S}
    station = parse_station(data)
    twin = twin_for_station(station)
    assert twin.model(station.arrays[0].name).preset.g_max_S == G_MAX_OVERRIDE_S
    assert twin.model(station.arrays[0].name).preset == twin_from_station(station).model(
        station.arrays[0].name
    ).preset


def test_the_direct_twin_backend_is_built_by_the_same_builder() -> None:
    data = {
        "name": "t",
        "backend": "twin",
        "twin": {"overrides": {"n_states": 20}, "seed": 4},
        "arrays": [
            {"name": "A", "rows": 4, "cols": 4, "diameter_m": 1e-6, "overrides": {"g_max_S": G_MAX_OVERRIDE_S}},
            {"name": "B", "rows": 2, "cols": 2, "diameter_m": 1e-6},
        ],
    }
    station = parse_station(data)
    backend = build_backend(station)
    same = twin_from_station(station)
    assert backend.model("A").preset == same.model("A").preset  # type: ignore[attr-defined]
    assert backend.model("A").preset.g_max_S == G_MAX_OVERRIDE_S  # type: ignore[attr-defined]
    assert backend.model("A").preset.n_states == 20  # type: ignore[attr-defined]
    assert backend.model("B").preset.n_states == 20  # type: ignore[attr-defined]
    assert backend.seed == 4  # type: ignore[attr-defined]


def _request(name: str, rows: int = 3, cols: int = 2, **device: float) -> ArrayRequest:
    return ArrayRequest(ArraySpec(name, rows, cols, 1e-12), DeviceRequest(**device))  # type: ignore[arg-type]


def test_twin_kind_fabricates_requested_arrays_with_their_devices() -> None:
    station = load_station(None)
    preset = twin_from_station(station).preset
    out = backend_kind("twin").provision(
        station,
        [_request("X", n_states=7, c2c_sigma_over_mu=0.2, window_scale=2.0), _request("Y", d2d_sigma=0.1)],
        "test",
    )
    arrays = {a.name: a for a in out.arrays}
    assert [a.name for a in station.arrays] == [a.name for a in out.arrays][: len(station.arrays)]
    assert arrays["X"].overrides == {
        "n_states": 7,
        "c2c_sigma_over_mu": 0.2,
        "g_max_S": pytest.approx(preset.g_min_S + 2.0 * (preset.g_max_S - preset.g_min_S)),
    }
    assert arrays["Y"].overrides == {"d2d_sigma": 0.1}
    assert (arrays["X"].rows, arrays["X"].cols, arrays["X"].device_area_m2) == (3, 2, 1e-12)
    twin = twin_from_station(out)
    assert twin.model("X").preset.n_states == 7 and twin.model("X").preset.c2c_sigma_over_mu == 0.2


def test_an_array_the_twin_station_declares_keeps_its_own_overrides_and_shape() -> None:
    station = parse_station(
        {
            "name": "t",
            "arrays": [{"name": "X", "rows": 3, "cols": 2, "diameter_m": 1e-6, "overrides": {"n_states": 9}}],
        }
    )
    out = backend_kind("twin").provision(station, [_request("X", n_states=7, d2d_sigma=0.3)], "test")
    assert out.arrays[0].overrides == {"n_states": 9, "d2d_sigma": 0.3}
    with pytest.raises(ConfigError, match="station: array 'X' is 3 x 2, protocol 'test' needs 4 x 2"):
        backend_kind("twin").provision(station, [_request("X", rows=4)], "test")


def test_a_hardware_kind_needs_the_arrays_declared_and_refuses_variability() -> None:
    station = parse_station(station_dict(rows=3, cols=2))
    kind = backend_kind("smu-matrix")
    assert kind.provision(station, [_request("A", n_states=7, window_scale=2.0)], "test") is station
    with pytest.raises(ConfigError, match="needs array 'Z' \\(3 x 2\\), which station 'emulated-2600\\+707b'"):
        kind.provision(station, [_request("Z")], "test")
    with pytest.raises(ConfigError, match="station: array 'A' is 3 x 2, protocol 'test' needs 5 x 2"):
        kind.provision(station, [_request("A", rows=5)], "test")
    with pytest.raises(ConfigError, match="^c2c_sigma_over_mu: a twin device parameter; station"):
        kind.provision(station, [_request("A", c2c_sigma_over_mu=0.1)], "test")


def test_prepare_provisions_through_the_kind_for_any_backend() -> None:
    _, _, twin_station = prepare(
        "area-scaling", load_station(None), {"arrays": "auto", "diameters_nm": "100,200"}
    )
    fabricated = [a for a in twin_station.arrays if a.name not in {s.name for s in load_station(None).arrays}]
    assert len(fabricated) == 2
    hardware = parse_station(station_dict())
    with pytest.raises(ConfigError, match="needs array"):
        prepare("area-scaling", hardware, {"arrays": "auto", "diameters_nm": "100,200"})
