"""The twin as a backend kind (``backend: twin``), registered in the entry-point group
``rram_hil.backends``: the core finds it there and never imports :mod:`sim_backend`."""

from __future__ import annotations

from collections.abc import Sequence

from hil.backend import Backend
from hil.backends.registry import BackendKind
from hil.station import Station
from hil.types import ArrayRequest
from sim_backend.station_twin import fabricate, twin_config, twin_from_station, with_windows


class TwinKind(BackendKind):
    """The simulated twin: arrays fabricated to order, seeded randomness."""

    name = "twin"
    fabricates_arrays = True

    def build(self, station: Station, seed: int | None = None) -> Backend:
        return twin_from_station(station, seed)

    def default_seed(self, station: Station) -> int | None:
        return twin_config(station).seed

    def check(self, station: Station) -> None:
        twin_from_station(station).close()  # resolves the presets and their overrides

    def provision(self, station: Station, requests: Sequence[ArrayRequest], protocol: str) -> Station:
        """The requested arrays fabricated, and every array's calibrated window known."""
        return with_windows(fabricate(station, tuple(requests), protocol))
