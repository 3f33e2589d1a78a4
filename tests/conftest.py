"""Shared fixtures: twin backends with chosen physics, a fresh store per test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hil.store import Store
from hil.types import ArraySpec
from sim_backend.preset import DevicePreset, load_preset
from sim_backend.twin import TwinBackend

#: 1 um diameter, the preset's reference device
REF_AREA_M2 = ArraySpec.area_from_diameter(1e-6)

#: a twin without any randomness: closed forms apply exactly
IDEAL = {
    "c2c_sigma_over_mu": 0.0,
    "d2d_sigma": 0.0,
    "stuck_fraction": 0.0,
    "read_noise_rel": 0.0,
    "nonlinearity_potentiation": 0.0,
    "iv_v0_V": None,
    "retention_tau_s": None,
}


@pytest.fixture
def preset() -> DevicePreset:
    return load_preset("mo_tiox_choi2021")


@pytest.fixture
def make_twin(preset: DevicePreset) -> Callable[..., TwinBackend]:
    def make(arrays: list[ArraySpec] | None = None, seed: int = 0, **overrides: object) -> TwinBackend:
        p = preset.with_overrides(**overrides) if overrides else preset
        return TwinBackend(arrays or [ArraySpec("A", 8, 8, REF_AREA_M2)], p, seed=seed)

    return make


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "test.sqlite")
    yield s
    s.close()
