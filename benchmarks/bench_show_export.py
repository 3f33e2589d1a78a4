"""`rram-hil show`, `runs`, `export` and `analyze` on one large run: wall time and peak memory.

A potentiation-cycling-shaped run of N readings (default 4,200,000: a 32 x 32 array cycled,
``kind``/``cycle``/``pulse`` filled in) is inserted in bulk, no protocol. Each command then runs in
a child process of its own, so its peak resident set size (VmHWM) is its own; the time is the
command's, imports excluded (the child's total wall time, interpreter start included, is shown
too). Baselines in the same run: plain sqlite3 (``sum(n)`` of the run's blocks for show, and for
scale ``count(*)`` through the ``readings`` view, which decodes every reading in SQL; the view
streamed through ``csv.writer`` for export) and the whole-table path ``show`` and ``export`` took before
(``len(readings_df)``, ``readings_df(...).to_csv``; ``--skip-whole`` leaves it out at sizes where
it would not fit). Last line: ``show_seconds_<N>_readings: SECONDS s``.

    python benchmarks/bench_show_export.py [--readings N] [--skip-whole] [--skip-analyze]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = r"""
import json, sys, time
mode, db, run_id, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
if mode == "sqlite3-count":
    import sqlite3
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    n = con.execute("select sum(n) from reading_blocks where run_id = ?", (run_id,)).fetchone()[0]
    n += con.execute("select sum(n) from pulse_blocks where run_id = ?", (run_id,)).fetchone()[0]
elif mode == "view-count":
    import sqlite3
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    n = con.execute("select count(*) from readings where run_id = ?", (run_id,)).fetchone()[0]
    n += con.execute("select count(*) from pulses where run_id = ?", (run_id,)).fetchone()[0]
elif mode == "sqlite3-export":
    import csv, sqlite3
    cols = ("run_id, seq, kind, array, row, col, voltage_V, current_A, conductance_S, t_s, cycle, "
            "pulse, step")
    t0 = time.perf_counter()
    con = sqlite3.connect(db)
    cur = con.execute(f"select {cols} from readings where run_id = ? order by seq", (run_id,))
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(c.strip() for c in cols.split(","))
        while rows := cur.fetchmany(100_000):
            w.writerows(rows)
elif mode in ("whole-show", "whole-export"):
    from hil.store import Store
    t0 = time.perf_counter()
    store = Store(db)
    df = store.readings_df(run_id)
    if mode == "whole-show":
        n = len(df) + len(store.pulses_df(run_id))
    else:
        df.to_csv(out, index=False)
else:
    from typer.testing import CliRunner
    from hil.cli import app
    args = {"show": ["show", str(run_id), "--db", db, "--json"],
            "runs": ["runs", "--db", db, "--json"],
            "export": ["export", str(run_id), "--db", db, "-o", out],
            "analyze": ["analyze", str(run_id), "--db", db, "--json"]}[mode]
    t0 = time.perf_counter()
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
seconds = time.perf_counter() - t0
# VmHWM: this process's own peak (ru_maxrss keeps the forking parent's across exec)
with open("/proc/self/status") as fh:
    rss = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024.0
print(json.dumps({"seconds": seconds, "peak_mib": rss}))
"""


def build(db: Path, n: int) -> int:
    """A run of ``n`` readings shaped like potentiation cycling of a 32 x 32 array (50 pulses a
    cycle), with one pulse record per 50 readings; returns its id."""
    from hil.engine import prepare
    from hil.station import load_station
    from hil.store import Store

    rng = np.random.default_rng(0)
    array = load_station(None).arrays[0].name
    proto, checked, station = prepare("potentiation-cycling", load_station(None), {"pulses": 50})
    with Store(db) as store:
        run_id = store.create_run(
            proto.name, checked.model_dump(mode="json"), station.snapshot(), station.backend, seed=0
        )
        chunk = 250_000
        for start in range(0, n, chunk):
            i = np.arange(start, min(n, start + chunk))
            cell = (i // 50) % 1024
            g = 1e-5 + 1e-6 * (i % 50) + rng.normal(0, 1e-7, len(i))
            store.add_readings(
                {
                    "run_id": run_id, "seq": i, "kind": "potentiation", "array": array,
                    "row": cell // 32, "col": cell % 32, "voltage_V": 0.2, "current_A": 0.2 * g,
                    "conductance_S": g, "t_s": i * 1e-4, "cycle": i // 51_200, "pulse": i % 50,
                }
            )  # fmt: skip
            j = i[::50]
            store.add_pulses(
                {
                    "run_id": run_id, "seq": j, "purpose": "potentiation", "array": array,
                    "row": (j // 50) % 1024 // 32, "col": (j // 50) % 32, "amplitude_V": 1.2,
                    "width_s": 1e-6, "count": 50, "t_s": j * 1e-4, "cycle": j // 51_200,
                }
            )  # fmt: skip
        store.finish_run(run_id, "completed")
    return run_id


def measure(mode: str, db: Path, run_id: int, out: Path) -> tuple[float, float, float]:
    """(command seconds, child wall seconds, peak MiB) of one command in a child process."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(db), str(run_id), str(out)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    wall = time.perf_counter() - t0
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(result["seconds"]), wall, float(result["peak_mib"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=4_200_000, help="readings in the run")
    parser.add_argument("--skip-whole", action="store_true", help="leave out the whole-table path")
    parser.add_argument("--skip-analyze", action="store_true", help="leave out `rram-hil analyze`")
    args = parser.parse_args()
    n = args.readings
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "large.sqlite"
        t0 = time.perf_counter()
        run_id = build(db, n)
        size = db.stat().st_size / 2**20
        print(f"{n} readings inserted in {time.perf_counter() - t0:.1f} s ({size:.0f} MiB database)")
        modes = ["sqlite3-count", "view-count", "show", "runs", "sqlite3-export", "export"]
        if not args.skip_whole:
            modes += ["whole-show", "whole-export"]
        if not args.skip_analyze:
            modes.append("analyze")
        results = {}
        for mode in modes:
            out = Path(tmp) / f"{mode}.csv"
            seconds, wall, peak = measure(mode, db, run_id, out)
            results[mode] = seconds
            print(f"{mode:>15}: {seconds:8.3f} s (child {wall:6.2f} s), peak {peak:7.0f} MiB")
            if mode in ("export", "whole-export"):
                out.unlink()
        if "whole-show" in results:
            print(f"show: {results['whole-show'] / results['show']:.0f} x faster than the whole-table path")
    label = f"{n / 1e6:g}M" if n >= 1_000_000 else f"{n // 1000}k"
    print(f"show_seconds_{label}_readings: {results['show']:.3f} s")


if __name__ == "__main__":
    main()
