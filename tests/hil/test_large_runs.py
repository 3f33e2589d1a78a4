"""`show`, `runs` and `export` on runs with hundreds of thousands of readings: counts in SQL,
export streamed in chunks (the same bytes as the whole table's CSV), memory bounded whatever the
run's size. No timing here (see benchmarks/bench_show_export.py)."""

from __future__ import annotations

import gc
import json
import sqlite3
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import hil.api as rh
from hil.cli import app
from hil.cli import runs as runs_cli
from hil.cli.common import json_columns
from hil.store import READING_COLUMNS, Store

runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def add_synthetic_run(store: Store, n: int, seed: int = 0) -> int:
    """A run of ``n`` readings (and n / 10 pulse records) inserted in bulk, no protocol: nulls in
    ``conductance_S`` (0 V reads) and ``cycle`` (the first readings), ``step`` never set."""
    rng = np.random.default_rng(seed)
    run_id = store.create_run("potentiation-cycling", {"n": n}, {"name": "synthetic"}, "twin", seed=seed)
    i = np.arange(n)
    voltage = np.where(i % 7 == 0, 0.0, 0.2)
    current = rng.uniform(1e-7, 1e-5, n)
    conductance = [None if v == 0 else c / v for v, c in zip(voltage.tolist(), current.tolist(), strict=True)]
    store.add_readings(
        {
            "run_id": run_id, "seq": i, "kind": np.where(i % 2 == 0, "potentiation", "readout").tolist(),
            "array": "A", "row": i % 32, "col": (i // 32) % 32, "voltage_V": voltage, "current_A": current,
            "conductance_S": conductance, "t_s": i * 1e-3,
            "cycle": [None if k < 100 else k // 1000 for k in range(n)], "pulse": i % 50,
        }
    )  # fmt: skip
    m = n // 10
    j = np.arange(m)
    store.add_pulses(
        {
            "run_id": run_id, "seq": j, "purpose": "potentiation", "array": "A", "row": j % 32,
            "col": 0, "amplitude_V": 1.2, "width_s": 1e-6, "count": 1, "t_s": j * 1e-3, "cycle": j // 100,
        }
    )  # fmt: skip
    store.finish_run(run_id, "completed")
    return run_id


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int, int]:
    """A database with a run of N and a run of 4N readings (300,000 in all)."""
    db = tmp_path_factory.mktemp("large") / "large.sqlite"
    n = 60_000
    with Store(db) as store:
        small = add_synthetic_run(store, n, seed=1)
        large = add_synthetic_run(store, 4 * n, seed=2)
    return db, small, large, n


def test_show_counts_match_plain_sql(big: tuple[Path, int, int, int]) -> None:
    db, small, large, n = big
    con = sqlite3.connect(db)
    for run_id in (small, large):
        readings = con.execute("select count(*) from readings where run_id = ?", (run_id,)).fetchone()[0]
        pulses = con.execute("select count(*) from pulses where run_id = ?", (run_id,)).fetchone()[0]
        with Store(db) as store:
            assert store.count_readings(run_id) == readings and store.count_pulses(run_id) == pulses
        res = cli("show", str(run_id), "--db", str(db), "--json")
        assert res.exit_code == 0, res.output
        shown = json.loads(res.stdout)
        assert shown["readings"] == readings and shown["pulse_records"] == pulses
        assert set(shown) >= {"id", "protocol", "status", "readings", "pulse_records", "plots"}
    assert readings == 4 * n
    with Store(db) as store:
        assert store.count_readings(9999) == 0 and store.count_pulses(9999) == 0
    res = cli("runs", "--db", str(db), "--json")
    listed = {r["id"]: r["readings"] for r in json.loads(res.stdout)}
    for run_id in (small, large):
        expect = con.execute("select count(*) from readings where run_id = ?", (run_id,)).fetchone()[0]
        assert listed[run_id] == expect
    con.close()


def test_iter_readings_chunks_are_readings_df(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        run_id = add_synthetic_run(store, 2_500)
        whole = store.readings_df(run_id)
        chunks = list(store.iter_readings(run_id, chunk_rows=1_000))
        assert [len(c) for c in chunks] == [1_000, 1_000, 500]
        for chunk in chunks:
            assert tuple(chunk.columns) == READING_COLUMNS
            assert chunk.dtypes.to_dict() == whole.dtypes.to_dict()
        # only the first chunk has null cycles: the later ones are float64 all the same, as readings_df
        pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
        pulses = pd.concat(list(store.iter_pulses(run_id, chunk_rows=64)), ignore_index=True)
        pd.testing.assert_frame_equal(pulses, store.pulses_df(run_id))
        assert list(store.iter_readings(9999)) == []
        with pytest.raises(ValueError, match="chunk_rows"):
            next(store.iter_readings(run_id, chunk_rows=0))


def _old_csv(frame: pd.DataFrame) -> str:
    """What `rram-hil export` wrote before it streamed: the whole table through json_columns."""
    return str(json_columns(frame).to_csv(index=False))


def test_export_is_byte_identical_to_the_whole_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "small.sqlite"
    res = cli("run", "potentiation-cycling", "--db", str(db), "--no-plot",
              "--set", "cycles=2", "--set", "pulses=10", "--set", "cells=0:2,0:2")  # fmt: skip
    assert res.exit_code == 0, res.output
    with Store(db) as store:
        synthetic = add_synthetic_run(store, 2_345)
        empty = store.create_run("potentiation-cycling", {}, {"name": "empty"}, "twin")
    monkeypatch.setattr(runs_cli, "EXPORT_CHUNK_ROWS", 1_000)  # several chunks even here
    for run_id in (1, synthetic, empty):
        with Store(db) as store:
            expected = {
                "readings": _old_csv(store.readings_df(run_id)),
                "pulses": _old_csv(store.pulses_df(run_id)),
                "events": _old_csv(store.events_df(run_id)),
            }
        for table, text in expected.items():
            out = tmp_path / f"{run_id}-{table}.csv"
            res = cli("export", str(run_id), "--db", str(db), "--table", table, "-o", str(out))
            assert res.exit_code == 0, res.output
            assert out.read_text(encoding="utf-8") == text, (run_id, table)
            rows = text.count("\n") - 1
            assert f"{rows} rows written" in res.stderr
            res = cli("export", str(run_id), "--db", str(db), "--table", table)
            assert res.stdout == text, (run_id, table)
        api_out = tmp_path / f"{run_id}-api.csv"
        frame = rh.export(run_id, api_out, db=str(db))
        with Store(db) as store:
            pd.testing.assert_frame_equal(frame, store.readings_df(run_id))
        assert api_out.read_text(encoding="utf-8") == frame.to_csv(index=False)
        events = rh.export(run_id, tmp_path / "ev.csv", table="events", db=str(db))
        old = events.copy()
        for col in old.columns:
            if old[col].map(lambda v: isinstance(v, dict | list)).any():
                old[col] = old[col].map(json.dumps)
        assert (tmp_path / "ev.csv").read_text(encoding="utf-8") == old.to_csv(index=False)


def _export_peak(db: Path, run_id: int, out: Path) -> tuple[int, int]:
    """tracemalloc's peak (bytes) during `rram-hil export RUN -o FILE`, and the file's lines."""
    gc.collect()
    tracemalloc.start()
    try:
        res = cli("export", str(run_id), "--db", str(db), "-o", str(out))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.exit_code == 0, res.output
    with open(out, encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
    return peak, lines


def test_export_memory_does_not_grow_with_the_run(tmp_path: Path, monkeypatch) -> None:
    n = 15_000
    db = tmp_path / "mem.sqlite"
    with Store(db) as store:
        small = add_synthetic_run(store, n, seed=1)
        large = add_synthetic_run(store, 4 * n, seed=2)
    monkeypatch.setattr(runs_cli, "EXPORT_CHUNK_ROWS", 3_000)
    cli("export", str(small), "--db", str(db), "-o", str(tmp_path / "warm.csv"))  # imports, caches
    peak_n, lines_n = _export_peak(db, small, tmp_path / "n.csv")
    peak_4n, lines_4n = _export_peak(db, large, tmp_path / "4n.csv")
    assert (lines_n, lines_4n) == (n + 1, 4 * n + 1)
    # streamed: the peak is one chunk's worth at both sizes (loading the whole table: ~4x)
    assert peak_4n < 1.5 * peak_n, (peak_n, peak_4n)
