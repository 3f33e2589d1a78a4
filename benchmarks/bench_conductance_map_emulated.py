"""32 x 32 conductance map through the emulated SMU + switch matrix, against the instrument floor.

The ``conductance-map`` protocol reads every cell of a 32 x 32 array through a Keithley 2636B
and a 707B matrix, both emulated on loopback with their realistic per-message latency (2 ms for
a 2600B message with its reading, 3 ms for a 707B relay change with its settling). A cell needs
two messages, one after the other: the matrix routes it (and reads the route back), then the
SMU reads it. The instrument-bound floor is therefore

    floor = cells x (matrix latency + SMU latency)

the time the instruments alone need, with an infinitely fast host. The figure is the wall time
of the whole run (backend opened, every reading committed to the store, safe state at the end)
over that floor; the target is <= 1.2. The same map with zero latency, in the same run, shows
the host's own cost per cell.

    python benchmarks/bench_conductance_map_emulated.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hil.engine import RunEngine
from hil.station import parse_station
from hil.store import Store
from sim_backend.emulators.launcher import launch_station

ROWS = COLS = 32
SMU_LATENCY_S = 2e-3
MATRIX_LATENCY_S = 3e-3


def station() -> dict[str, object]:
    return {
        "name": "bench-smu-matrix",
        "backend": "smu-matrix",
        "twin": {"preset": "mo_tiox_choi2021", "seed": 0},
        "instruments": {
            "smu": {"model": "keithley2600", "resource": "TCPIP0::127.0.0.1::0::SOCKET"},
            "matrix": {
                "model": "keithley707b",
                "resource": "TCPIP0::127.0.0.1::0::SOCKET",
                "options": {"slots": 6},
            },
        },
        "arrays": [
            {
                "name": "A",
                "rows": ROWS,
                "cols": COLS,
                "diameter_m": 1.0e-6,
                "routing": {
                    "matrix": "matrix",
                    "row_pins": 1,
                    "col_pins": 37,
                    "drive": {"smu": "smu", "channel": "a", "matrix_row": "A"},
                    "ground_row": "B",
                },
            }
        ],
    }


def run_map(smu_latency_s: float, matrix_latency_s: float, db: Path) -> tuple[float, int, int]:
    """Wall time (s) of one conductance-map run, and the messages the SMU and matrix received."""
    bench = launch_station(parse_station(station(), "bench"), free_ports=True)
    bench.emulators["smu"].latency_s = smu_latency_s
    bench.emulators["matrix"].latency_s = matrix_latency_s
    with bench, Store(db) as store:
        engine = RunEngine(store)
        smu0, mat0 = bench.emulators["smu"].messages_received, bench.emulators["matrix"].messages_received
        t0 = time.perf_counter()
        outcome = engine.run("conductance-map", bench.station, {"array": "A"}, plot=False)
        wall = time.perf_counter() - t0
        assert outcome.status == "completed", outcome.error
        assert len(store.readings_df(outcome.run_id)) == ROWS * COLS
        smu_msgs = bench.emulators["smu"].messages_received - smu0
        mat_msgs = bench.emulators["matrix"].messages_received - mat0
    return wall, smu_msgs, mat_msgs


def main() -> None:
    cells = ROWS * COLS
    with tempfile.TemporaryDirectory() as tmp:
        host_wall, _, _ = run_map(0.0, 0.0, Path(tmp) / "host.sqlite")
        wall, smu_msgs, mat_msgs = run_map(SMU_LATENCY_S, MATRIX_LATENCY_S, Path(tmp) / "bench.sqlite")
    floor = cells * (SMU_LATENCY_S + MATRIX_LATENCY_S)
    print(f"array                         {ROWS} x {COLS} = {cells} cells (Keithley 2636B + 707B, emulated)")
    print(
        f"latency per message           SMU {SMU_LATENCY_S * 1e3:g} ms, matrix {MATRIX_LATENCY_S * 1e3:g} ms"
    )
    print(
        f"messages received             SMU {smu_msgs}, matrix {mat_msgs} ({(smu_msgs + mat_msgs) / cells:.3f} per cell)"
    )
    print(f"host cost, zero latency       {host_wall:.3f} s ({host_wall / cells * 1e3:.3f} ms per cell)")
    print(f"instrument-bound floor        {floor:.3f} s (cells x (SMU + matrix latency))")
    print(f"wall time with latency        {wall:.3f} s ({wall / cells * 1e3:.3f} ms per cell)")
    print(f"conductance_map_over_floor: {wall / floor:.3f} x")


if __name__ == "__main__":
    main()
