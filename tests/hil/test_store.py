"""The store: schema, bulk logging, reading back, durability under SIGKILL."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from hil.errors import ConfigError
from hil.store import Store, database_url


def _run(store: Store) -> int:
    return store.create_run("demo", {"a": 1}, {"name": "st"}, "twin", {"backend": "twin"}, seed=3)


def test_run_lifecycle_and_readings_roundtrip(store: Store) -> None:
    run_id = _run(store)
    info = store.run(run_id)
    assert info.status == "running" and info.seed == 3 and info.parameters == {"a": 1}
    g = np.linspace(1e-6, 2e-6, 5)
    n = store.add_readings(
        {"run_id": run_id, "seq": np.arange(5), "array": "A", "row": 0, "col": np.arange(5),
         "voltage_V": 0.5, "current_A": g * 0.5, "conductance_S": g, "t_s": np.arange(5) * 1e-3, "cycle": 2}
    )  # fmt: skip
    assert n == 5
    df = store.readings_df(run_id)
    assert list(df["seq"]) == [0, 1, 2, 3, 4]
    assert df["conductance_S"].to_numpy() == pytest.approx(g)
    assert set(df["kind"]) == {"read"} and set(df["cycle"]) == {2} and df["pulse"].isna().all()
    store.finish_run(run_id, "completed")
    assert store.run(run_id).status == "completed" and store.run(run_id).ended_at is not None
    assert store.runs_df().set_index("id").loc[run_id, "readings"] == 5
    with pytest.raises(ValueError, match="status"):
        store.finish_run(run_id, "done")


def test_file_is_plain_sqlite_with_wal_and_documented_tables(tmp_path: Path) -> None:
    path = tmp_path / "plain.sqlite"
    store = Store(path)
    run_id = _run(store)
    store.add_pulses({"run_id": run_id, "seq": [0], "array": "A", "row": 1, "col": 2,
                      "amplitude_V": 2.0, "width_s": 1e-4, "count": 50, "t_s": 0.0})  # fmt: skip
    store.close()
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    assert {"runs", "reading_blocks", "pulse_blocks", "events", "checkpoints", "artifacts"} <= tables
    views = {r[0] for r in con.execute("select name from sqlite_master where type='view'")}
    assert {"readings", "pulses"} <= views  # one row per reading, in plain SQL (schema 0003)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    cols = [r[1] for r in con.execute("PRAGMA table_info(readings)")]
    for c in (
        "run_id",
        "seq",
        "array",
        "row",
        "col",
        "voltage_V",
        "current_A",
        "conductance_S",
        "t_s",
        "cycle",
        "pulse",
    ):
        assert c in cols
    run_cols = [r[1] for r in con.execute("PRAGMA table_info(runs)")]
    for c in ("id", "protocol", "parameters", "station", "backend", "seed", "package_version",
              "started_at", "ended_at", "status"):  # fmt: skip
        assert c in run_cols
    assert con.execute("select count, amplitude_V from pulses").fetchone() == (50, 2.0)


def test_foreign_keys_are_enforced(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        store.add_readings({"run_id": 999, "seq": [0], "array": "A", "row": 0, "col": 0,
                            "voltage_V": 0.5, "current_A": 0.0, "t_s": 0.0})  # fmt: skip
    store.conn.rollback()


def test_bad_columns_and_lengths(store: Store) -> None:
    run_id = _run(store)
    with pytest.raises(ValueError, match="unknown columns"):
        store.add_readings({"run_id": run_id, "seq": [0], "voltage": 1})
    with pytest.raises(ValueError, match="has 2 values"):
        store.add_readings({"run_id": run_id, "seq": [0, 1, 2], "row": [0, 1]})


def test_checkpoint_events_artifacts(store: Store) -> None:
    run_id = _run(store)
    assert store.load_checkpoint(run_id) is None
    store.save_checkpoint(run_id, {"next_cycle": 3})
    store.save_checkpoint(run_id, {"next_cycle": 4})
    assert store.load_checkpoint(run_id) == {"next_cycle": 4}
    store.add_event(run_id, "compliance", {"compliance_A": 1e-4}, t_s=0.1)
    ev = store.events_df(run_id)
    assert list(ev["kind"]) == ["compliance"]
    store.add_artifact(run_id, "plot", "/tmp/x.png")
    assert store.artifacts(run_id, "plot") == ["/tmp/x.png"]


def test_database_urls() -> None:
    assert database_url("x.sqlite") == "sqlite:///x.sqlite"
    assert database_url("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    with pytest.raises(ConfigError, match="db: directory"):
        Store("/no/such/dir/x.sqlite")
    with pytest.raises(ConfigError, match="not a valid database URL"):
        database_url("not a url://x")


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from hil.store import Store
    store = Store(sys.argv[1])
    run_id = store.create_run("writer", {}, {"name": "st"}, "twin")
    print(run_id, flush=True)
    seq = 0
    while True:
        n = 50
        store.add_readings({"run_id": run_id, "seq": np.arange(seq, seq + n), "array": "A", "row": 0,
                            "col": 0, "voltage_V": 0.5, "current_A": np.full(n, 1e-6),
                            "conductance_S": np.full(n, 2e-6), "t_s": np.arange(seq, seq + n) * 1.0})
        seq += n
    """
)


def test_sigkill_leaves_a_valid_database_and_the_run_marked_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "killed.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        run_id = int(proc.stdout.readline())
        # wait (bounded) until a good number of readings are committed, then kill -9 mid-write
        deadline = time.monotonic() + 30
        seen = 0
        while seen < 2000 and time.monotonic() < deadline:
            con = sqlite3.connect(db, timeout=10)
            seen = con.execute("select count(*) from readings").fetchone()[0]
            con.close()
        assert seen >= 2000
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    store = Store(db)
    assert store.integrity_ok()
    info = store.run(run_id)
    assert info.status == "interrupted"
    df = store.readings_df(run_id)
    assert len(df) >= seen and len(df) % 50 == 0  # whole batches only: each insert is one transaction
    assert list(df["seq"]) == list(range(len(df)))
    assert not df[["voltage_V", "current_A", "conductance_S", "t_s"]].isna().any().any()
    assert "marked-interrupted" in set(store.events_df(run_id)["kind"])


def test_live_runs_are_not_reaped(tmp_path: Path) -> None:
    a = Store(tmp_path / "live.sqlite")
    run_id = _run(a)
    b = Store(tmp_path / "live.sqlite")  # this process is alive: the run stays running
    assert b.run(run_id).status == "running"
    a.close()
    b.close()
