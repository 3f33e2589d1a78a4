"""Shared helpers of the SMU + switch-matrix tests: emulated stations on free ports."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hil.station import Station, load_station, parse_station
from sim_backend.emulators.launcher import Bench, launch_station
from sim_backend.emulators.scpi_server import Fault

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "station-smu-matrix-emulated.yaml"

#: (SMU model, matrix model, SMU channel, matrix rows for HI and ground, first row pin, first col pin)
STACKS: dict[str, tuple[str, str, str, str, str, int, int]] = {
    "2600+707b": ("keithley2600", "keithley707b", "a", "A", "B", 1, 37),
    "b2900+e5250a": ("b2900", "e5250a", "1", "1", "2", 1, 17),
    "2450+708b": ("keithley2450", "keithley708b", "1", "C", "D", 1, 7),
}


def station_dict(
    stack: str = "2600+707b", rows: int = 8, cols: int = 8, seed: int = 0, fast_timeout: bool = True
) -> dict[str, Any]:
    """A smu-matrix station (as a dict) for one instrument stack, ports to be chosen on start."""
    smu, matrix, channel, hi, lo, row0, col0 = STACKS[stack]
    slots = {"keithley707b": 6, "keithley708b": 1, "e5250a": 3}[matrix]
    timeout = 2.0 if fast_timeout else 10.0
    return {
        "name": f"emulated-{stack}",
        "backend": "smu-matrix",
        "twin": {"preset": "mo_tiox_choi2021", "seed": seed},
        "instruments": {
            "smu": {
                "model": smu,
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"timeout_s": timeout},
            },
            "matrix": {
                "model": matrix,
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"timeout_s": timeout, "slots": slots},
            },
        },
        "arrays": [
            {
                "name": "A",
                "rows": rows,
                "cols": cols,
                "diameter_m": 1e-6,
                "routing": {
                    "matrix": "matrix",
                    "row_pins": row0,
                    "col_pins": col0,
                    "drive": {"smu": "smu", "channel": channel, "matrix_row": hi},
                    "ground_row": lo,
                },
            }
        ],
        "limits": {"min_pulse_width_s": 1e-5},
    }


def twin_station_dict(rows: int, cols: int, seed: int = 0) -> dict[str, Any]:
    """The direct-twin station with the same array A as :func:`station_dict`."""
    return {
        "name": "direct-twin",
        "backend": "twin",
        "twin": {"preset": "mo_tiox_choi2021", "seed": seed},
        "arrays": [{"name": "A", "rows": rows, "cols": cols, "diameter_m": 1e-6}],
        "limits": {"min_pulse_width_s": 1e-5},
    }


@contextmanager
def emulated(
    station: Station | dict[str, Any] | str | Path,
    seed: int | None = None,
    latency_s: float | None = 0.0,
    faults: Mapping[str, list[Fault]] | None = None,
    on_message: Mapping[str, Callable[[str], None]] | None = None,
) -> Iterator[Bench]:
    """Run a station's emulators on free loopback ports; ``bench.station`` points at them."""
    st = (
        station
        if isinstance(station, Station)
        else (load_station(station) if isinstance(station, str | Path) else parse_station(station))
    )
    bench = launch_station(
        st, seed=seed, latency_s=latency_s, faults=faults, free_ports=True, on_message=on_message
    )
    with bench:
        yield bench
