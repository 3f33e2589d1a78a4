"""Host round trips per 50-pulse train with a read after every pulse, on the FPGA crossbar board.

The board backend runs the train natively: one PULSE command with read-after, so one frame out
and one reply back. The baseline, in the same run on the same emulated board, is the host
driving the same train itself: per pulse one PULSE (count 1) and one READ_CELLS, 100 round
trips. Round trips are counted by the driver (frames sent that waited for a reply, retries
included); the emulator answers with its default latency of 1 ms per command, so the wall times
show what the round trips cost. Whole-array programming, whole-array reads and VMM are counted
too.

    python benchmarks/bench_board_round_trips.py
"""

from __future__ import annotations

import time

import numpy as np

from hil.backends import open_backend
from hil.safety import SafeBackend
from hil.station import parse_station
from hil.types import Pulse
from sim_backend.emulators.board import BoardEmulator, twin_for_station

PULSES = 50
SET = Pulse(2.0, 100e-6)
RESET = Pulse(-4.0, 100e-6)


def station(resource: str) -> dict[str, object]:
    return {
        "name": "bench-board",
        "backend": "board",
        "twin": {"preset": "mo_tiox_choi2021", "seed": 0},
        "instruments": {"board": {"model": "board", "resource": resource}},
        "arrays": [{"name": "A", "rows": 32, "cols": 32, "diameter_m": 1.0e-6}],
    }


def trips(backend: SafeBackend) -> int:
    return int(backend.inner.round_trips)  # type: ignore[attr-defined]


def measure(backend: SafeBackend, label: str, fn: object) -> tuple[int, float]:
    assert callable(fn)
    before, t0 = trips(backend), time.perf_counter()
    fn()
    n, wall = trips(backend) - before, time.perf_counter() - t0
    print(f"{label:<52s} {n:6d} trips  {wall * 1e3:8.1f} ms")
    return n, wall


def main() -> None:
    template = parse_station(station("unused"), "bench")
    with BoardEmulator(twin_for_station(template)) as emulator:
        assert emulator.resource is not None
        st = parse_station(station(emulator.resource), "bench")
        with open_backend(st) as board:
            cell = [(3, 5)]
            board.pulse("A", cell, RESET, 5)

            def native() -> None:
                train = board.pulse("A", cell, SET, PULSES, read_after=True, read_voltage_V=0.5)
                assert train.conductance_S is not None and train.conductance_S.shape == (1, PULSES)

            def host_driven() -> None:
                for _ in range(PULSES):
                    board.pulse("A", cell, SET, 1)
                    board.read("A", cell, 0.5)

            print(f"emulated board, latency {emulator.latency.base_s * 1e3:g} ms per command")
            n_native, t_native = measure(board, f"{PULSES}-pulse train with reads, native (board)", native)
            board.pulse("A", cell, RESET, 5)
            n_host, t_host = measure(
                board, f"{PULSES}-pulse train with reads, host-driven (baseline)", host_driven
            )
            counts = np.random.default_rng(0).integers(0, 10, size=(32, 32))
            measure(board, "program 32 x 32 from a count matrix", lambda: board.program("A", counts, SET))
            measure(board, "read 32 x 32", lambda: board.read("A"))
            measure(board, "VMM 32 x 32, batch of 16 vectors", lambda: board.vmm("A", np.full((16, 32), 0.2)))
            print(
                f"baseline / native: {n_host / n_native:.0f}x fewer round trips, {t_host / t_native:.0f}x faster"
            )
            assert n_native <= 2, f"a {PULSES}-pulse train took {n_native} round trips (target <= 2)"
    print(f"board_round_trips_per_50_pulse_train: {n_native} trips")


if __name__ == "__main__":
    main()
