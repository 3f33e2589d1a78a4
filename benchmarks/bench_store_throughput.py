"""Committed readings per second: the store's bulk logging vs plain sqlite3 executemany.

Both write the same 200,000 readings in batches of 1,024 (one committed transaction per batch,
as a whole-array read is logged) into fresh SQLite files with the same pragmas (WAL,
synchronous=NORMAL). The baseline is the floor: the same rows through the sqlite3 module alone.

    python benchmarks/bench_store_throughput.py
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import numpy as np
from _common import best_of

from hil.store import Store

N = 200_000
BATCH = 1024


def columns(run_id: int, start: int, n: int) -> dict[str, object]:
    seq = np.arange(start, start + n)
    g = 1e-6 + 1e-8 * (seq % 50)
    return {
        "run_id": run_id, "seq": seq, "kind": "read", "array": "A", "row": seq // 32 % 32, "col": seq % 32,
        "voltage_V": 0.5, "current_A": g * 0.5, "conductance_S": g, "t_s": seq * 1e-4,
        "cycle": seq // 1600, "pulse": seq % 50, "step": None,
    }  # fmt: skip


def with_store(tmp: Path) -> None:
    path = tmp / "store.sqlite"
    path.unlink(missing_ok=True)
    store = Store(path)
    run_id = store.create_run("bench", {}, {"name": "bench"}, "twin")
    for start in range(0, N, BATCH):
        store.add_readings(columns(run_id, start, min(BATCH, N - start)))
    store.close()


def with_sqlite3(tmp: Path) -> None:
    path = tmp / "plain.sqlite"
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, run_id INT, seq INT, kind TEXT, array TEXT, row INT,"
        " col INT, voltage_V REAL, current_A REAL, conductance_S REAL, t_s REAL, cycle INT, pulse INT, step INT)"
    )
    con.execute("CREATE INDEX ix ON readings (run_id, seq)")
    sql = "INSERT INTO readings (run_id, seq, kind, array, row, col, voltage_V, current_A, conductance_S, t_s, cycle, pulse, step) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
    names = ("run_id", "seq", "kind", "array", "row", "col", "voltage_V", "current_A", "conductance_S", "t_s",
             "cycle", "pulse", "step")  # fmt: skip
    for start in range(0, N, BATCH):
        cols = columns(1, start, min(BATCH, N - start))
        n = len(cols["seq"])
        lists = [cols[k].tolist() if isinstance(cols[k], np.ndarray) else [cols[k]] * n for k in names]
        con.executemany(sql, list(zip(*lists, strict=True)))
        con.commit()
    con.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t_store, m_store = best_of(lambda: with_store(tmp), 3)
        t_plain, m_plain = best_of(lambda: with_sqlite3(tmp), 3)
    print(f"readings: {N} in batches of {BATCH}, one commit per batch")
    print(f"rram-hil store   : {N / t_store:>10,.0f} readings/s (best; median {N / m_store:,.0f})")
    print(f"sqlite3 baseline : {N / t_plain:>10,.0f} readings/s (best; median {N / m_plain:,.0f})")
    print(
        f"store / baseline : {t_plain / t_store:.2f} of the plain sqlite3 rate (target: >= 100,000 readings/s)"
    )
    print(f"store_committed_readings_per_s: {N / t_store:.0f} readings/s")


if __name__ == "__main__":
    main()
