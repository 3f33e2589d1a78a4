"""What looking for abort requests costs a run, and how soon a requested abort lands.

A run looks in the store for an ``abort-requested`` event (:class:`hil.engine.AbortWatch`) after
its commits, at most every ``ABORT_CHECK_S`` (0.25 s). The baseline is the same run through the
same engine with the watch off (``abort_check_s=None``: only a signal stops it), the strongest
comparison: nothing else differs. Both run alternately (best of the repeats) on the main job
(potentiation cycling, 30 cycles x 50 pulses, 1,500 readings, a commit per train) and on a
whole-array run (32 x 32 cells, 60 cycles: 3 million readings). ``every commit`` (interval 0)
shows what the rate limit saves. Then a long whole-array run is asked to stop from a second
connection (as another process would), and the time from the request's commit to the run being
``interrupted`` (safe state confirmed) is measured.

    python benchmarks/bench_abort_check.py
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hil.engine import ABORT_CHECK_S, RunEngine
from hil.station import load_station
from hil.store import Store

STATION = load_station(None)


def run_once(store: Store, params: dict[str, Any], interval_s: float | None) -> None:
    out = RunEngine(store, abort_check_s=interval_s).run("potentiation-cycling", STATION, params, plot=False)
    assert out.status == "completed", out.error


def best_alternating(store: Store, params: dict[str, Any], intervals: list[float | None], repeats: int) -> list[float]:
    for interval in intervals:  # warm-up
        run_once(store, params, interval)
    best = [float("inf")] * len(intervals)
    for _ in range(repeats):
        for i, interval in enumerate(intervals):
            t0 = time.perf_counter()
            run_once(store, params, interval)
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def abort_latency(db: Path) -> float:
    """Seconds from an abort request's commit (another connection) to the run ended interrupted."""
    with Store(db) as store:
        result: dict[str, Any] = {}

        def request() -> None:
            with Store(db, reap_stale=False) as other:
                while other.count_readings(run_id_box[0]) < 200_000 if run_id_box else True:
                    time.sleep(0.01)
                    other.conn.rollback()
                result["t0"] = time.perf_counter()
                other.request_abort(run_id_box[0], {"via": "benchmark"})

        run_id_box: list[int] = []
        original = store.create_run

        def create_run(*args: Any, **kwargs: Any) -> int:
            run_id_box.append(original(*args, **kwargs))
            return run_id_box[0]

        store.create_run = create_run  # type: ignore[method-assign]
        asker = threading.Thread(target=request)
        asker.start()
        out = RunEngine(store).run("potentiation-cycling", STATION, {"cells": "all", "cycles": 100_000}, plot=False)
        t1 = time.perf_counter()
        asker.join()
        assert out.status == "interrupted", out.error
        return t1 - result["t0"]


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        rows = []
        with Store(Path(d) / "bench.sqlite") as store:
            intervals: list[float | None] = [None, ABORT_CHECK_S, 0.0]
            for label, params, repeats in (
                ("one device (main job)", {}, 15),
                ("32 x 32 array, 60 cycles", {"cells": "all", "cycles": 60}, 2),
            ):
                rows.append((label, best_alternating(store, params, intervals, repeats)))
        latency = abort_latency(Path(d) / "latency.sqlite")
    for label, (off, rated, every) in rows:
        print(
            f"{label:26s}: no watch {off * 1e3:8.1f} ms, every {ABORT_CHECK_S:g} s {rated * 1e3:8.1f} ms "
            f"({100 * (rated - off) / off:+.1f} %), every commit {every * 1e3:8.1f} ms ({100 * (every - off) / off:+.1f} %)"
        )
    print(f"abort request to run interrupted (safe state confirmed): {latency * 1e3:.0f} ms")
    (_, (off, rated, _every)) = rows[0]
    print(f"abort_check_overhead: {100 * (rated - off) / off:.1f} %")


if __name__ == "__main__":
    main()
