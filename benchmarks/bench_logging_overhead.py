"""What durable logging costs a twin characterisation run.

The main job (potentiation cycling, 30 cycles x 50 pulses with a read after every pulse, strong
reset after each cycle: 1,500 readings) runs on the direct twin twice per repeat, through the
same protocol code: once logging to a SQLite store that commits every train as it is taken, once
to a store that discards everything (the baseline). The overhead is (durable - discard) / discard,
each the best of its repeats; the two alternate (discard, durable, discard, ...) so that a change
of the machine's load during the run hits both alike. It also times a whole-array run (32 x 32
cells: 1.5 million readings), where the twin takes ~0.1-0.2 us per reading and logging dominates.

    python benchmarks/bench_logging_overhead.py
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from hil.backends import open_backend
from hil.engine import parse_params
from hil.protocol import RunContext, get_protocol
from hil.station import load_station
from hil.store import Store


class DiscardStore:
    """The store interface a protocol uses, writing nothing (the baseline)."""

    def batch(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def add_readings(self, columns: Any) -> int:
        return 0

    def add_pulses(self, columns: Any) -> int:
        return 0

    def save_checkpoint(self, run_id: int, state: Any) -> None:
        return None

    def add_event(self, *args: Any, **kwargs: Any) -> None:
        return None

    def max_seq(self, run_id: int, table: str = "readings") -> int:
        return -1


def run_once(store: Any, params: dict[str, Any]) -> None:
    station = load_station(None)
    proto = get_protocol("potentiation-cycling")
    checked = parse_params(proto, params)
    backend = open_backend(station, 0)
    run_id = (
        store.create_run(proto.name, params, station.snapshot(), "twin") if isinstance(store, Store) else 1
    )
    proto.execute(RunContext(run_id, backend, store, station, 0), checked)


def alternating(first: Any, second: Any, repeats: int) -> tuple[float, float]:
    """Best wall time (s) of each of two functions run alternately ``repeats`` times (one warm-up each)."""
    first()
    second()
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        for i, fn in enumerate((first, second)):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best[0], best[1]


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "bench.sqlite")
        for label, params, repeats in (
            ("one device (main job)", {}, 15),
            ("32 x 32 array", {"cells": "all"}, 3),
        ):
            t_discard, t_durable = alternating(
                lambda p=params: run_once(DiscardStore(), p), lambda p=params: run_once(store, p), repeats
            )
            rows.append((label, t_discard, t_durable))
        store.close()
    for label, t_discard, t_durable in rows:
        print(
            f"{label:22s}: discard {t_discard * 1e3:8.1f} ms, durable {t_durable * 1e3:8.1f} ms, "
            f"overhead {100 * (t_durable - t_discard) / t_discard:7.1f} %"
        )
    label, t_discard, t_durable = rows[0]
    print(f"durable_logging_overhead: {100 * (t_durable - t_discard) / t_discard:.1f} %")


if __name__ == "__main__":
    main()
