"""Hardware backends: the station's ``backend`` picks one; each is imported only when used."""

from __future__ import annotations

from hil.backend import Backend
from hil.errors import ConfigError
from hil.station import Station


def build_hardware_backend(station: Station) -> Backend:
    """The raw (not yet safety-wrapped) hardware backend a station describes."""
    if station.backend == "board":
        from hil.hardware_board import build_board_backend

        return build_board_backend(station)
    raise ConfigError(f"backend: '{station.backend}' has no hardware backend in this installation")
