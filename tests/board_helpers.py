"""Shared helpers of the board tests: a board station around a running emulator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hil.station import Station, parse_station
from sim_backend.emulators.board import BoardEmulator, BoardFault, twin_for_station

#: the twin station's arrays, a subset, so board and direct twin fabricate the same devices
ARRAYS: list[dict[str, Any]] = [
    {"name": "A", "rows": 32, "cols": 32, "diameter_m": 1.0e-6},
    {"name": "N30", "rows": 8, "cols": 8, "diameter_m": 30.0e-9},
    {"name": "P", "rows": 8, "cols": 8, "diameter_m": 1.0e-6},
]


def board_station(resource: str = "/tmp/unused", seed: int = 0, **options: Any) -> Station:
    """A board station whose emulator twin matches the direct twin station of the same arrays."""
    return parse_station(
        {
            "name": "board-test",
            "backend": "board",
            "twin": {"preset": "mo_tiox_choi2021", "seed": seed},
            "instruments": {
                "board": {
                    "model": "board",
                    "resource": resource,
                    "options": {"timeout_s": 0.5, "retries": 2, **options},
                }
            },
            "arrays": ARRAYS,
        },
        "board-test",
    )


def twin_station(seed: int = 0) -> Station:
    """The direct twin station with the same arrays and seed."""
    return parse_station(
        {
            "name": "twin-test",
            "backend": "twin",
            "twin": {"preset": "mo_tiox_choi2021", "seed": seed},
            "arrays": ARRAYS,
        },
        "twin-test",
    )


@contextmanager
def emulated_board(
    seed: int = 0,
    faults: Sequence[BoardFault] = (),
    rx_max_payload: int | None = None,
    **options: Any,
) -> Iterator[tuple[Station, BoardEmulator]]:
    """A running emulator (no latency) and a board station pointing at it."""
    template = board_station(seed=seed)
    twin = twin_for_station(template)
    extra = {} if rx_max_payload is None else {"rx_max_payload": rx_max_payload}
    emulator = BoardEmulator(twin, latency=0, faults=faults, **extra)
    resource = emulator.start()
    try:
        yield board_station(resource, seed=seed, **options), emulator
    finally:
        emulator.stop()
