"""The hardware backends: chosen by ``station.backend``.

* ``smu-matrix``: source-measure units routed to the array by a switch matrix
  (:mod:`hil.hardware_smu`);
* ``board``: an FPGA crossbar board over serial (:mod:`hil.hardware_board`).

Both sit below the safety layer (:class:`hil.safety.SafeBackend`, added by :mod:`hil.factory`).
"""

from __future__ import annotations

from hil.backend import Backend
from hil.errors import ConfigError
from hil.station import Station


def build_hardware_backend(station: Station) -> Backend:
    """The raw hardware backend of ``station`` (no safety layer).

    Raises:
        ConfigError: the station does not describe a usable hardware backend (one line naming
            the field), or an instrument cannot be reached.
    """
    if station.backend == "smu-matrix":
        from hil.hardware_smu import build_smu_matrix_backend

        return build_smu_matrix_backend(station)
    if station.backend == "board":
        try:
            from hil.hardware_board import build_board_backend
        except ImportError as exc:
            raise ConfigError(
                f"backend: 'board' is not available in this installation (hil.hardware_board: {exc})"
            ) from None
        return build_board_backend(station)
    raise ConfigError(f"backend: '{station.backend}' is not a hardware backend (smu-matrix, board)")
