"""32 x 32 conductance map through the emulated SMU + switch matrix, against the instrument floor.

The ``conductance-map`` protocol reads every cell of a 32 x 32 array through a Keithley 2636B
and a 707B matrix. Both are emulated by ``rram-hil emulate`` in a process of their own, as in
use, on loopback with their realistic per-message latency (2 ms for a 2600B message with its
reading, 3 ms for a 707B relay change with its settling). A cell needs two messages, one after
the other: the matrix routes it (and reads the route back), then the SMU reads it. The
instrument-bound floor is therefore

    floor = cells x (matrix latency + SMU latency)

the time the instruments alone need, with an infinitely fast host and network. The figure is
the wall time of the whole run (backend opened, every reading committed to the store, safe
state at the end; best of 3) over that floor; the target is <= 1.2. The same map against
zero-latency emulators, in the same run, shows the cost of the host and the emulators
themselves per cell. On a shared machine the figure moves with the load (every message wakes
two processes twice); ``uptime`` is printed with it.

    python benchmarks/bench_conductance_map_emulated.py
"""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pyvisa.resources
import yaml

from hil.engine import RunEngine
from hil.station import parse_station
from hil.store import Store

ROWS = COLS = 32
SMU_LATENCY_S = 2e-3  # the keithley2600 emulator's default
MATRIX_LATENCY_S = 3e-3  # the keithley707b emulator's default
REPEATS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def station() -> dict[str, Any]:
    return {
        "name": "bench-smu-matrix",
        "backend": "smu-matrix",
        "twin": {"preset": "mo_tiox_choi2021", "seed": 0},
        "instruments": {
            "smu": {"model": "keithley2600", "resource": f"TCPIP0::127.0.0.1::{_free_port()}::SOCKET"},
            "matrix": {
                "model": "keithley707b",
                "resource": f"TCPIP0::127.0.0.1::{_free_port()}::SOCKET",
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


class Emulators:
    """``rram-hil emulate STATION`` in a subprocess, until the ``with`` block ends."""

    def __init__(self, path: Path, latency_s: float | None) -> None:
        args = [sys.executable, "-m", "hil.cli", "emulate", str(path)]
        if latency_s is not None:
            args += ["--latency", str(latency_s)]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, text=True, env=dict(os.environ, COLUMNS="200")
        )
        lines: queue.Queue[str] = queue.Queue()
        stdout = self.proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in iter(stdout.readline, ""):
                lines.put(line.strip())

        threading.Thread(target=pump, daemon=True).start()
        while lines.get(timeout=60) != "ready":
            pass

    def __enter__(self) -> Emulators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class MessageCount:
    """Counts every VISA message written by this process while active."""

    def __init__(self) -> None:
        self.n = 0
        self._original = pyvisa.resources.MessageBasedResource.write

    def __enter__(self) -> MessageCount:
        original = self._original

        def counted(resource: Any, message: str, *args: Any, **kwargs: Any) -> Any:
            self.n += 1
            return original(resource, message, *args, **kwargs)

        pyvisa.resources.MessageBasedResource.write = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        pyvisa.resources.MessageBasedResource.write = self._original  # type: ignore[method-assign]


def timed_maps(path: Path, db: Path, latency_s: float | None, repeats: int) -> tuple[list[float], int]:
    """Wall times (s) of ``repeats`` conductance-map runs, and the messages of the last one."""
    st = parse_station(yaml.safe_load(path.read_text()), str(path))
    walls, messages = [], 0
    with Emulators(path, latency_s), Store(db) as store:
        engine = RunEngine(store)
        for _ in range(repeats):
            with MessageCount() as count:
                t0 = time.perf_counter()
                outcome = engine.run("conductance-map", st, {"array": "A"}, plot=False)
                walls.append(time.perf_counter() - t0)
            assert outcome.status == "completed", outcome.error
            assert len(store.readings_df(outcome.run_id)) == ROWS * COLS
            messages = count.n
    return walls, messages


def main() -> None:
    cells = ROWS * COLS
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "station.yaml"
        path.write_text(yaml.safe_dump(station()))
        host, _ = timed_maps(path, Path(tmp) / "host.sqlite", 0.0, 1)
        walls, messages = timed_maps(path, Path(tmp) / "bench.sqlite", None, REPEATS)
    wall = min(walls)
    floor = cells * (SMU_LATENCY_S + MATRIX_LATENCY_S)
    load = os.getloadavg()[0]
    print(f"array                          {ROWS} x {COLS} = {cells} cells (Keithley 2636B + 707B, emulated)")
    print(
        f"latency per message            SMU {SMU_LATENCY_S * 1e3:g} ms, matrix {MATRIX_LATENCY_S * 1e3:g} ms"
    )
    print(f"messages per run               {messages} ({messages / cells:.3f} per cell)")
    print(f"host + emulators, no latency   {host[0]:.3f} s ({host[0] / cells * 1e3:.3f} ms per cell)")
    print(f"instrument-bound floor         {floor:.3f} s (cells x (SMU + matrix latency))")
    print(
        f"wall time with latency         {wall:.3f} s, best of {REPEATS} ({', '.join(f'{w:.2f}' for w in walls)})"
    )
    print(f"machine load (1 min)           {load:.2f}")
    print(f"conductance_map_over_floor: {wall / floor:.3f} x")


if __name__ == "__main__":
    main()
