"""Shared fixtures of the conformance suite: a twin, and an emulator started on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from hil.types import ArraySpec
from sim_backend.emulators.launcher import emulator_class
from sim_backend.emulators.scpi_server import InstrumentServer
from sim_backend.preset import load_preset
from sim_backend.twin import TwinBackend


@pytest.fixture
def twin() -> TwinBackend:
    """A 4 x 4 Mo/TiOx twin; emulators started alone are cabled to its cell (0, 0)."""
    spec = ArraySpec("A", 4, 4, ArraySpec.area_from_diameter(1e-6))
    return TwinBackend([spec], load_preset("mo_tiox_choi2021"), seed=3)


@pytest.fixture
def start_emulator(twin: TwinBackend) -> Iterator[Callable[[str], InstrumentServer]]:
    """``start_emulator(model)``: the model's emulator listening on a free loopback port (no
    latency); stopped after the test, which fails if a message raised inside the emulator."""
    started: list[InstrumentServer] = []

    def start(model: str) -> InstrumentServer:
        cls, fixed = emulator_class(model)
        emu: InstrumentServer = cls(twin, latency_s=0, **fixed)
        emu.start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
    for emu in started:
        assert emu.internal_errors == [], f"{emu.model}: exceptions inside the emulator"
        scpi = getattr(emu, "scpi", None)
        if scpi is not None:
            assert scpi.internal_errors == [], f"{emu.model}: exceptions inside the emulator"
