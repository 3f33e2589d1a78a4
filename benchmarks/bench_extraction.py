"""Extraction speed on the paper's Fig. 3E run over a whole array, against a plain pandas groupby.

The run: potentiation-cycling, 30 cycles x 50 pulses with a read after every pulse, on every cell
of a 32 x 32 twin array: 1,536,000 readings in a temporary SQLite store. Both contenders get the
same in-memory table (``store.readings_df``; its load time is printed, not compared):

- extraction: :func:`protocols.analysis.extract.analyze`, everything `rram-hil analyze` reports (dense
  curve tensor, potentiation fit, per-device bounds, sigma/mu, device-to-device spread, stuck
  devices, the Fig. 3F heat map);
- baseline: one plain pandas groupby over the same table, per device and cycle:
  ``df.groupby(["array", "row", "col", "cycle"])["conductance_S"].agg(["min", "max", "mean", "std"])``.

Each is timed as the best of ``--repeat`` runs after a warm-up. The last line is the ratio of the two times:
the full extraction's cost in units of one plain groupby (below 1: faster than the groupby).

    python benchmarks/bench_extraction.py [--rows 32 --cols 32 --cycles 30 --pulses 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from _common import best_of

from hil.engine import RunEngine
from hil.station import parse_station
from hil.store import Store
from protocols.analysis.extract import analyze


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--cols", type=int, default=32)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--pulses", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    station = parse_station(
        {
            "name": "bench",
            "backend": "twin",
            "arrays": [{"name": "A", "rows": args.rows, "cols": args.cols, "diameter_m": 1e-6}],
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.sqlite")
        t = time.perf_counter()
        outcome = RunEngine(store).run(
            "potentiation-cycling",
            station,
            {"cells": "all", "cycles": args.cycles, "pulses": args.pulses},
            plot=False,
        )
        print(f"run {outcome.run_id} ({outcome.status}) on the twin: {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        df = store.readings_df(outcome.run_id)
        print(f"readings: {len(df):,} loaded from SQLite in {time.perf_counter() - t:.2f} s")

        result = analyze(store, outcome.run_id, readings=df)
        s = result.summary
        print(
            f"extracted: Gmin {s['g_min_S'] * 1e6:.3f} uS, Gmax {s['g_max_S'] * 1e6:.3f} uS, "
            f"{s['n_states']:.1f} states, step {s['step_mean_S'] * 1e9:.1f} nS, sigma/mu {s['sigma_over_mu']:.3f}, "
            f"nu {s['nonlinearity']:.3f}, d2d {s['d2d_sigma']:.3f}, {s['n_devices']} devices"
        )

        def extraction() -> None:
            analyze(store, outcome.run_id, readings=df)

        def groupby() -> pd.DataFrame:
            return df.groupby(["array", "row", "col", "cycle"])["conductance_S"].agg(
                ["min", "max", "mean", "std"]
            )

        t_extract, _ = best_of(extraction, args.repeat)
        t_groupby, _ = best_of(groupby, args.repeat)
        store.close()
    print(f"extraction (everything `rram-hil analyze` reports): {t_extract:.3f} s")
    print(f"plain pandas groupby (min/max/mean/std per device and cycle): {t_groupby:.3f} s")
    print(f"extraction_over_pandas_groupby: {t_extract / t_groupby:.2f} x")


if __name__ == "__main__":
    main()
