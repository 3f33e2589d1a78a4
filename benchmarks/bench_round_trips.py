"""Host round trips per 50-pulse train with a read after every pulse, for each SMU model.

Each SMU runs the train in its own sequencer (2600B: a TSP function around the trigger model;
B2900: pulse mode on timer triggers; 2450: the trigger model) and returns the 50 readings from
its buffer. Counted on the host, at the drivers' connections (every instrument emulated on
loopback, 1 ms per message): the messages the host sent for one train, and the round trips
(replies it waited for). The first train of a connection is not counted (the 2600B loads its
TSP functions once per connection).

Rows:

* ``driver``: the SMU driver's ``pulse_train`` alone;
* ``backend``: one ``backend.pulse(..., read_after=True)`` through the SMU + matrix backend,
  matrix messages included (route with read-back, then after the train output off and relays
  open, which need no reply);
* baseline, in the same run: the host driving the same train itself on the 2600B, one message
  per pulse and one read per pulse.

The wall times are the host's and the messages' latency only: the emulators play the
instruments' own time (pulse widths, delays) out on their clocks without waiting for it.

The FPGA board's row runs its backend on the emulated board (a pty, 1 ms per command) and counts
with the board driver's own round-trip counter (every frame waits for its reply);
``bench_board_round_trips.py`` has the board's other operations. Another backend is one more
entry in ``CASES``: a function returning a :class:`Count`.

    python benchmarks/bench_round_trips.py
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hil.backends import open_backend
from hil.station import parse_station
from hil.types import Pulse
from sim_backend.emulators.launcher import emulator_class, launch_station, twin_for

PULSES = 50
LATENCY_S = 1e-3
#: The shortest pulse each model is asked for (the 2450 has no pulse mode; see its driver).
WIDTH_S = {"keithley2600": 100e-6, "b2900": 100e-6, "keithley2450": 1e-3}
CHANNEL = {"keithley2600": "a", "b2900": "1", "keithley2450": "1"}


class Tally:
    """Counts the messages written and the replies read on drivers' connections."""

    def __init__(self, *drivers: Any) -> None:
        self.messages = 0
        self.replies = 0
        for driver in drivers:
            adapter = driver.adapter
            write, read = adapter.write, adapter.read

            def counted_write(command: str, _write: Any = write, **kwargs: Any) -> None:
                self.messages += 1
                _write(command, **kwargs)

            def counted_read(_read: Any = read, **kwargs: Any) -> str:
                self.replies += 1
                return _read(**kwargs)

            adapter.write, adapter.read = counted_write, counted_read

    def since(self, start: tuple[int, int], t0: float) -> Count:
        return Count(self.messages - start[0], self.replies - start[1], time.perf_counter() - t0)

    def mark(self) -> tuple[tuple[int, int], float]:
        return (self.messages, self.replies), time.perf_counter()


@dataclass
class Count:
    """Messages the host sent, round trips it waited for, and the wall time (s), for one train."""

    messages: int
    round_trips: int
    wall_s: float


def _driver(model: str, resource: str) -> Any:
    if model == "keithley2600":
        from drivers.keithley2600 import Keithley2600

        return Keithley2600(resource, timeout=10000, visa_library="@py")
    if model == "b2900":
        from drivers.b2900 import KeysightB2900

        return KeysightB2900(resource, timeout=10000, visa_library="@py")
    from drivers.keithley2450 import Keithley2450

    return Keithley2450(resource, timeout=10000, visa_library="@py")


def _station() -> Any:
    return parse_station(
        {"name": "bench", "arrays": [{"name": "A", "rows": 4, "cols": 4, "diameter_m": 1e-6}]}
    )


def driver_train(model: str) -> Count:
    """One 50-pulse train with reads through the SMU driver, on the emulated SMU alone."""
    cls, fixed = emulator_class(model)
    with cls(twin_for(_station(), 0), latency_s=LATENCY_S, **fixed) as emu:
        smu = _driver(model, emu.resource)
        ch = CHANNEL[model]
        smu.arm(ch, 1e-3)
        smu.pulse_train(ch, -4.0, WIDTH_S[model], 5, 5e-3, 1e-3)  # warm-up (2600B: loads its script)
        tally = Tally(smu)
        start, t0 = tally.mark()
        readings = smu.pulse_train(ch, 2.0, WIDTH_S[model], PULSES, 5e-3, 1e-3, read_voltage_V=0.5)
        count = tally.since(start, t0)
        assert readings is not None and len(readings) == PULSES
        smu.outputs_off([ch])
        smu.adapter.close()
    return count


def backend_train(model: str) -> Count:
    """One ``backend.pulse`` of 50 pulses with reads through the SMU + matrix backend."""
    matrix, hi, lo = ("e5250a", "1", "2") if model == "b2900" else ("keithley707b", "A", "B")
    station = {
        "name": "bench",
        "backend": "smu-matrix",
        "twin": {"seed": 0},
        "instruments": {
            "smu": {"model": model, "resource": "TCPIP0::127.0.0.1::0::SOCKET"},
            "matrix": {"model": matrix, "resource": "TCPIP0::127.0.0.1::0::SOCKET"},
        },
        "arrays": [
            {
                "name": "A",
                "rows": 4,
                "cols": 4,
                "diameter_m": 1e-6,
                "routing": {
                    "matrix": "matrix",
                    "row_pins": 1,
                    "col_pins": 5,
                    "drive": {"smu": "smu", "matrix_row": hi},
                    "ground_row": lo,
                },
            }
        ],
        "limits": {"min_pulse_width_s": 1e-5},
    }
    bench = launch_station(parse_station(station), free_ports=True, latency_s=LATENCY_S)
    with bench, open_backend(bench.station) as backend:
        pulse = Pulse(2.0, WIDTH_S[model])
        backend.pulse("A", [(1, 1)], pulse, 5)  # warm-up
        raw = backend.inner
        tally = Tally(raw.driver("smu"), raw.driver("matrix"))
        start, t0 = tally.mark()
        backend.pulse("A", [(1, 1)], pulse, PULSES, read_after=True)
        count = tally.since(start, t0)
    return count


def host_driven_baseline() -> Count:
    """The same train driven by the host on the 2600B: a pulse message and a read per pulse."""
    cls, fixed = emulator_class("keithley2600")
    with cls(twin_for(_station(), 0), latency_s=LATENCY_S, **fixed) as emu:
        smu = _driver("keithley2600", emu.resource)
        smu.arm("a", 1e-3)
        tally = Tally(smu)
        start, t0 = tally.mark()
        for _ in range(PULSES):
            smu.write("smua.source.levelv=2 delay(0.0001) smua.source.levelv=0")
            smu.read_current("a", 0.5)
        count = tally.since(start, t0)
        smu.outputs_off(["a"])
        smu.adapter.close()
    return count


def board_train() -> Count:
    """One ``backend.pulse`` of 50 pulses with reads on the emulated FPGA board."""
    import tempfile
    from pathlib import Path

    from sim_backend.emulators.board import BoardEmulator, twin_for_station

    def board_station(resource: str) -> dict[str, Any]:
        return {
            "name": "bench-board",
            "backend": "board",
            "twin": {"seed": 0},
            "instruments": {"board": {"model": "board", "resource": resource}},
            "arrays": [{"name": "A", "rows": 4, "cols": 4, "diameter_m": 1e-6}],
        }

    with tempfile.TemporaryDirectory() as tmp:
        link = str(Path(tmp) / "board")
        template = parse_station(board_station(link))
        emulator = BoardEmulator(twin_for_station(template), link=link, latency=LATENCY_S)
        with emulator, open_backend(template) as backend:
            pulse = Pulse(2.0, 100e-6)
            backend.pulse("A", [(1, 1)], pulse, 5)  # warm-up
            trips0, t0 = int(backend.inner.round_trips), time.perf_counter()
            backend.pulse("A", [(1, 1)], pulse, PULSES, read_after=True)
            trips = int(backend.inner.round_trips) - trips0
            return Count(trips, trips, time.perf_counter() - t0)


#: Rows of the table: label -> function counting one 50-pulse train with reads.
CASES: dict[str, Callable[[], Count]] = {
    "keithley2600 (2636B, TSP)   driver": lambda: driver_train("keithley2600"),
    "keithley2600 + 707B         backend": lambda: backend_train("keithley2600"),
    "b2900 (B2902A, SCPI)        driver": lambda: driver_train("b2900"),
    "b2900 + E5250A              backend": lambda: backend_train("b2900"),
    "keithley2450 (SCPI, 1 ms)   driver": lambda: driver_train("keithley2450"),
    "keithley2450 + 707B         backend": lambda: backend_train("keithley2450"),
    "board (FPGA, serial)        backend": board_train,
    "baseline: host-driven 2600B": host_driven_baseline,
}


def main() -> None:
    print(
        f"{PULSES}-pulse train, a read after every pulse; emulated instruments, {LATENCY_S * 1e3:g} ms per message"
    )
    print(f"{'':38s} {'messages':>8s} {'round trips':>11s} {'wall':>9s}")
    results = {}
    for label, fn in CASES.items():
        c = fn()
        results[label] = c
        print(f"{label:38s} {c.messages:8d} {c.round_trips:11d} {c.wall_s * 1e3:7.1f} ms")
    headline = max(
        results[k].round_trips for k in results if k.split()[0] in ("keithley2600", "b2900") and "driver" in k
    )
    print(f"round_trips_per_50_pulse_train_2600b_b2900: {headline} round trips")


if __name__ == "__main__":
    main()
