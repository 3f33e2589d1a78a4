"""Committed readings per second: the store's bulk logging vs plain sqlite3.

Each writes the same 300,000 readings in batches of 1,024 (one committed transaction per batch,
as a whole-array read is logged) into a fresh SQLite file with the same pragmas (WAL,
synchronous=NORMAL). The batches (column dicts of numpy arrays, as protocols hand them over)
are built before the clock starts and the database is opened before it: the time is the
logging path alone, from the first insert to the last commit returning. Two baselines, both
the sqlite3 module alone:

- narrow rows: one row per reading with ``executemany`` (what the store did before schema 0003);
- JSON blocks: one row per batch, the same row-major JSON made by orjson, no view, no trigger,
  no constant-column elision (the floor of this layout).

    python benchmarks/bench_store_throughput.py
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from hil.store import Store

N = 300_000
BATCH = 1024
REPEATS = 5
NAMES = ("run_id", "seq", "kind", "array", "row", "col", "voltage_V", "current_A", "conductance_S", "t_s",
         "cycle", "pulse", "step")  # fmt: skip


def columns(run_id: int, start: int, n: int) -> dict[str, object]:
    seq = np.arange(start, start + n)
    g = 1e-6 + 1e-8 * (seq % 50)
    return {
        "run_id": run_id, "seq": seq, "kind": "read", "array": "A", "row": seq // 32 % 32, "col": seq % 32,
        "voltage_V": 0.5, "current_A": g * 0.5, "conductance_S": g, "t_s": seq * 1e-4,
        "cycle": seq // 1600, "pulse": seq % 50, "step": None,
    }  # fmt: skip


def batches(run_id: int) -> list[dict[str, object]]:
    return [columns(run_id, start, min(BATCH, N - start)) for start in range(0, N, BATCH)]


def fresh(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


def with_store(tmp: Path) -> float:
    store = Store(fresh(tmp / "store.sqlite"))
    run_id = store.create_run("bench", {}, {"name": "bench"}, "twin")
    work = batches(run_id)
    t0 = time.perf_counter()
    for cols in work:
        store.add_readings(cols)
    elapsed = time.perf_counter() - t0
    assert store.count_readings(run_id) == N
    store.close()
    return elapsed


def _plain(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(fresh(path))
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


def _lists(cols: dict[str, object]) -> list[list[object]]:
    n = len(cols["seq"])  # type: ignore[arg-type]
    return [cols[k].tolist() if isinstance(cols[k], np.ndarray) else [cols[k]] * n for k in NAMES]  # type: ignore[union-attr]


def with_sqlite3_rows(tmp: Path) -> float:
    con = _plain(tmp / "rows.sqlite")
    con.execute(
        "CREATE TABLE readings (id INTEGER PRIMARY KEY, run_id INT, seq INT, kind TEXT, array TEXT, row INT,"
        " col INT, voltage_V REAL, current_A REAL, conductance_S REAL, t_s REAL, cycle INT, pulse INT, step INT)"
    )
    con.execute("CREATE UNIQUE INDEX ix ON readings (run_id, seq)")
    sql = f"INSERT INTO readings ({', '.join(NAMES)}) VALUES ({', '.join('?' * len(NAMES))})"
    work = batches(1)
    t0 = time.perf_counter()
    for cols in work:
        con.executemany(sql, list(zip(*_lists(cols), strict=True)))
        con.commit()
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def with_sqlite3_blocks(tmp: Path) -> float:
    con = _plain(tmp / "blocks.sqlite")
    con.execute("CREATE TABLE blocks (id INTEGER PRIMARY KEY, run_id INT, seq_first INT, n INT, data TEXT)")
    con.execute("CREATE UNIQUE INDEX ix ON blocks (run_id, seq_first)")
    numeric = NAMES[4:]
    work = batches(1)
    t0 = time.perf_counter()
    for cols in work:
        n = len(cols["seq"])  # type: ignore[arg-type]
        mat = np.empty((n, len(numeric)))
        for k, name in enumerate(numeric):
            value = cols[name]
            mat[:, k] = np.nan if value is None else value  # type: ignore[assignment]
        data = orjson.dumps(mat, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        con.execute(
            "INSERT INTO blocks (run_id, seq_first, n, data) VALUES (1, ?, ?, ?)",
            (int(cols["seq"][0]), n, data),
        )  # type: ignore[index]
        con.commit()
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def best(fn: Callable[[Path], float], tmp: Path) -> tuple[float, float]:
    fn(tmp)  # warm-up
    times = [fn(tmp) for _ in range(REPEATS)]
    return min(times), statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = {}
        for label, fn in (
            ("rram-hil store", with_store),
            ("sqlite3 narrow rows", with_sqlite3_rows),
            ("sqlite3 JSON blocks", with_sqlite3_blocks),
        ):
            results[label] = best(fn, tmp)
    print(f"readings: {N:,} in batches of {BATCH}, one commit per batch (best of {REPEATS}; median)")
    for label, (t_best, t_median) in results.items():
        print(f"{label:20s}: {N / t_best:>11,.0f} readings/s ({N / t_median:,.0f})")
    t_store = results["rram-hil store"][0]
    print(
        f"store / narrow rows : {results['sqlite3 narrow rows'][0] / t_store:.2f} x (target: >= 1,000,000 readings/s)"
    )
    print(f"store / JSON blocks : {results['sqlite3 JSON blocks'][0] / t_store:.2f} x")
    print(f"store_committed_readings_per_s: {N / t_store:.0f} readings/s")


if __name__ == "__main__":
    main()
