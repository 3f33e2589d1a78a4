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
import pandas as pd
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


# ---------------------------------------------------------------------- blocks and the plain-SQL views
def _mixed_readings(run_id: int, start: int = 0) -> dict[str, object]:
    """Readings a block layout must not simplify away: kinds and arrays changing inside the
    batch, a seq gap, NULLs in some columns, shared values in others, a column never set."""
    n = 40
    seq = np.concatenate([np.arange(start, start + 25), np.arange(start + 30, start + 45)])
    v = np.where(np.arange(n) % 9 == 0, 0.0, 0.2)
    i = np.linspace(1e-7, 3e-6, n) * np.where(v == 0, 1.0, 1.0)
    g = [None if vv == 0 else ii / vv for vv, ii in zip(v.tolist(), i.tolist(), strict=True)]
    return {
        "run_id": run_id, "seq": seq, "kind": ["a"] * 10 + ["b"] * 20 + ["a"] * 10,
        "array": ["A"] * 35 + ["B"] * 5, "row": np.arange(n) % 3, "col": 7, "voltage_V": v,
        "current_A": i, "conductance_S": g, "t_s": np.arange(n) * 1e-3 + 1 / 3,
        "cycle": [None] * 5 + [1] * 35, "pulse": np.arange(n), "step": None,
    }  # fmt: skip


@pytest.mark.parametrize("group", [None, 1, 7, 25])
def test_the_views_give_every_reading_as_readings_df_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, group: int | None
) -> None:
    """Plain SQL through the views (what sqlite3 and datasette see) and the library's own block
    decoding give the same rows, values and dtypes; blocks split where kind, array or seq change.
    ``group``: the readings decoded at a time (a group ends inside, on, and after block edges)."""
    import pandas as pd

    from hil.store import blocks

    if group is not None:
        monkeypatch.setattr(blocks, "DECODE_GROUP", group)
    path = tmp_path / "views.sqlite"
    with Store(path) as store:
        run_id = _run(store)
        assert store.add_readings(_mixed_readings(run_id)) == 40
        store.add_readings(_mixed_readings(run_id, start=100))
        store.add_pulses({"run_id": run_id, "seq": np.arange(6), "purpose": ["reset"] * 3 + ["set"] * 3,
                          "array": "A", "row": np.arange(6), "col": 0, "amplitude_V": -4.0,
                          "width_s": 1e-4, "count": 5, "t_s": np.arange(6) * 0.5})  # fmt: skip
        whole = store.readings_df(run_id)
        pulses = store.pulses_df(run_id)
        blocks_n = store.conn.exec_driver_sql("SELECT count(*) FROM reading_blocks").scalar()
    assert blocks_n == 2 * 5  # kind a|b|a, the seq gap inside b, array A|B: five blocks per batch
    for table, frame in (("readings", whole), ("pulses", pulses)):
        plain = pd.read_sql_query(
            f"SELECT {', '.join(chr(34) + c + chr(34) for c in frame.columns)} FROM {table} "
            f"WHERE run_id = {run_id} ORDER BY seq",
            f"sqlite:///{path}",
        )
        pd.testing.assert_frame_equal(frame, plain)
    assert len(whole) == 80 and whole["seq"].is_monotonic_increasing
    assert whole["step"].isna().all() and whole["step"].dtype == object  # never set: as a narrow table
    assert whole["cycle"].dtype == np.float64 and whole["row"].dtype == np.int64
    assert whole["conductance_S"].isna().sum() == 2 * 5  # NULL at 0 V, kept NULL
    assert list(whole["kind"][:12]) == ["a"] * 10 + ["b"] * 2


def test_values_are_exact_through_the_view_and_the_library(tmp_path: Path) -> None:
    """Every float survives the JSON round trip bit for bit, in plain SQL as in readings_df."""
    rng = np.random.default_rng(7)
    n = 3000
    g = np.concatenate(
        [rng.uniform(1e-7, 1e-5, n // 3), np.exp(rng.normal(0, 40, n // 3)), rng.normal(size=n // 3)]
    )
    path = tmp_path / "exact.sqlite"
    with Store(path) as store:
        run_id = _run(store)
        store.add_readings({"run_id": run_id, "seq": np.arange(n), "array": "A", "row": 0, "col": 0,
                            "voltage_V": g[::-1].copy(), "current_A": g * 0.2, "conductance_S": g,
                            "t_s": np.arange(n) / 7})  # fmt: skip
        df = store.readings_df(run_id)
    assert np.array_equal(df["conductance_S"].to_numpy(), g)
    assert np.array_equal(df["current_A"].to_numpy(), g * 0.2)
    con = sqlite3.connect(path)
    plain = np.array(
        con.execute("SELECT conductance_S, voltage_V, t_s FROM readings ORDER BY seq").fetchall()
    )
    con.close()
    assert np.array_equal(plain[:, 0], g) and np.array_equal(plain[:, 1], g[::-1])
    assert np.array_equal(plain[:, 2], np.arange(n) / 7)


def test_overlapping_seq_ranges_are_refused_in_plain_sql_too(tmp_path: Path) -> None:
    """(run_id, seq) is unique across blocks: a block that starts elsewhere but overlaps another
    is refused (trigger), by the store and by a plain sqlite3 INSERT alike; gaps are fine."""
    from sqlalchemy.exc import IntegrityError

    path = tmp_path / "overlap.sqlite"
    with Store(path) as store:
        run_id = _run(store)
        cols = {"run_id": run_id, "array": "A", "row": 0, "col": 0, "voltage_V": 0.2, "current_A": 1e-6,
                "t_s": 0.0}  # fmt: skip
        store.add_readings({**cols, "seq": np.arange(10, 20)})
        store.add_readings({**cols, "seq": np.arange(30, 40)})
        for seq in (np.arange(15, 25), np.arange(5, 11), np.arange(0, 50), np.arange(19, 20)):
            with pytest.raises(IntegrityError):
                store.add_readings({**cols, "seq": seq})
            store.conn.rollback()
        store.add_readings({**cols, "seq": np.arange(20, 30)})  # exactly the gap
        store.add_readings({**cols, "seq": np.arange(0, 10)})
        assert store.count_readings(run_id) == 40 and store.max_seq(run_id) == 39
        assert list(store.readings_df(run_id)["seq"]) == list(range(40))
    con = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="overlaps"):
        con.execute(
            "INSERT INTO reading_blocks (run_id, seq_first, n, kind, array, has_null, has_value, data) "
            "VALUES (?, 35, 10, 'read', 'A', 0, 0, '[]')",
            (run_id,),
        )
    con.close()


def test_relabel_splits_a_block_of_several_cycles(store: Store) -> None:
    run_id = _run(store)
    n = 30
    store.add_readings({"run_id": run_id, "seq": np.arange(n), "kind": "potentiation", "array": "A",
                        "row": 0, "col": 0, "voltage_V": 0.2, "current_A": np.arange(n) * 1e-7,
                        "t_s": np.arange(n) * 1.0, "cycle": np.arange(n) // 10})  # fmt: skip
    store.add_readings({"run_id": run_id, "seq": np.arange(n, n + 10), "kind": "potentiation", "array": "A",
                        "row": 0, "col": 0, "voltage_V": 0.2, "current_A": 1e-6, "t_s": 1.0, "cycle": 1})  # fmt: skip
    before = store.readings_df(run_id)
    assert store.relabel_readings(run_id, "potentiation", "potentiation-interrupted", cycle=1) == 20
    after = store.readings_df(run_id)
    expected = before.copy()
    expected.loc[expected["cycle"] == 1, "kind"] = "potentiation-interrupted"
    import pandas as pd

    pd.testing.assert_frame_equal(after, expected)  # same readings, same seq, only those relabelled
    assert store.relabel_readings(run_id, "potentiation", "x", cycle=7) == 0
    assert store.relabel_readings(run_id, "potentiation", "other") == 20
    assert set(store.readings_df(run_id)["kind"]) == {"other", "potentiation-interrupted"}


def test_bad_values_are_refused_in_one_line(store: Store) -> None:
    run_id = _run(store)
    base = {"run_id": run_id, "seq": np.arange(3), "array": "A", "row": 0, "col": 0, "voltage_V": 0.2,
            "t_s": 0.0}  # fmt: skip
    with pytest.raises(ValueError, match="'current_A' is required"):
        store.add_readings(base)
    with pytest.raises(ValueError, match="'current_A' is required and may not be null"):
        store.add_readings({**base, "current_A": [1e-6, None, 1e-6]})
    with pytest.raises(ValueError, match="beyond 2\\*\\*53"):
        store.add_readings({**base, "current_A": 1e-6, "cycle": np.array([0, 2**60, 1])})
    with pytest.raises(ValueError, match="'seq' needs one value per reading"):
        store.add_readings({**base, "seq": 0, "current_A": np.ones(3)})
    assert store.count_readings(run_id) == 0 and store.readings_df(run_id).empty


def test_readings_after_a_seq_are_what_readings_df_has_after_it(store: Store) -> None:
    run_id = store.create_run("potentiation-cycling", {}, {"name": "s"}, "twin")
    assert store.readings_after(run_id, -1).empty
    seq = 0
    for k, kind in enumerate(["potentiation", "reset-read", "potentiation", "potentiation"]):
        n = 7 + 3 * k
        store.add_readings(
            {"run_id": run_id, "seq": np.arange(seq, seq + n), "kind": kind, "array": "A", "row": 0,
             "col": np.arange(n) % 4, "voltage_V": 0.5, "current_A": np.arange(n) * 1e-6,
             "conductance_S": np.arange(n) * 2e-6, "t_s": np.arange(seq, seq + n) * 1e-3, "cycle": k}
        )  # fmt: skip
        seq += n
    whole = store.readings_df(run_id)
    pd.testing.assert_frame_equal(store.readings_after(run_id, -1), whole)
    for after in (0, 6, 7, 20, 40, seq - 2, seq - 1):
        got = store.readings_after(run_id, after)
        pd.testing.assert_frame_equal(got, whole[whole["seq"] > after].reset_index(drop=True))
    capped = store.readings_after(run_id, 5, max_rows=9)
    pd.testing.assert_frame_equal(capped, whole[whole["seq"] > 5].head(9).reset_index(drop=True))
    pot = store.readings_after(run_id, 3, kinds=["potentiation"])
    expected = whole[(whole["seq"] > 3) & (whole["kind"] == "potentiation")].reset_index(drop=True)
    pd.testing.assert_frame_equal(pot, expected)


def test_an_abort_is_requested_only_of_a_running_run(store: Store) -> None:
    run_id = store.create_run("demo", {}, {"name": "st"}, "twin")
    assert store.abort_request(run_id) is None
    event_id = store.request_abort(run_id, {"via": "test", "client": "here"})
    assert event_id == store.last_event_id(run_id) > 0
    assert store.abort_request(run_id) == {"id": event_id, "origin": {"via": "test", "client": "here"}}
    assert store.abort_request(run_id, after_event_id=event_id) is None  # a newer one only
    assert not store.conn.in_transaction()  # the reads leave no snapshot held
    store.finish_run(run_id, "completed")
    before = store.events_df(run_id)
    with pytest.raises(ConfigError, match=rf"^abort: run {run_id} is 'completed', not running; nothing changed$"):
        store.request_abort(run_id, {"via": "test"})
    assert store.events_df(run_id).equals(before)
    with pytest.raises(ConfigError, match="^abort: no run with id 99 in "):
        store.request_abort(99, {"via": "test"})
    kinds = list(store.events_df(run_id)["kind"])
    assert kinds == ["abort-requested"]


def _mixed_blocks(store: Store) -> tuple[int, list[int]]:
    """A run of blocks of every shape: values per reading, shared ones, NULLs, a block whose
    every value is in its row ("[[]]"); returns the run and the blocks' first seqs."""
    run_id = store.create_run("potentiation-cycling", {}, {"name": "s"}, "twin")
    seq, firsts = 0, []
    for k in range(6):
        n = 5 + 4 * k
        g = np.arange(n) * 1e-6 + k * 1e-5
        if k == 2:
            g[1] = np.nan  # a NULL inside the block
        cols = {"run_id": run_id, "seq": np.arange(seq, seq + n), "kind": "potentiation" if k % 3 else "read",
                "array": "A", "row": np.arange(n) // 3, "col": np.arange(n) % 3, "voltage_V": 0.5,
                "current_A": np.arange(n) * 5e-7, "conductance_S": g, "t_s": 1.0 * k, "cycle": k, "pulse": np.arange(n)}  # fmt: skip
        if k == 4:  # every reading alike: the block row holds it all
            cols = {**cols, "row": 1, "col": 2, "current_A": 1e-6, "conductance_S": 2e-6, "pulse": 0}
        store.add_readings(cols)
        firsts.append(seq)
        seq += n
    return run_id, firsts


def test_readings_after_cuts_blocks_where_asked(store: Store) -> None:
    run_id, firsts = _mixed_blocks(store)
    whole = store.readings_df(run_id)
    last = int(whole["seq"].max())
    for after in (-1, 0, 3, 4, 5, 11, 30, last - 1, last):
        for cap in (None, 1, 2, 7, 25):
            got = store.readings_after(run_id, after, max_rows=cap)
            expected = whole[whole["seq"] > after]
            expected = expected if cap is None else expected.head(cap)
            pd.testing.assert_frame_equal(got, expected.reset_index(drop=True))


def test_a_sample_is_the_head_of_evenly_spaced_blocks(store: Store) -> None:
    run_id, firsts = _mixed_blocks(store)
    whole = store.readings_df(run_id)
    sizes = [5 + 4 * k for k in range(6)]
    sample = store.readings_sample(run_id, readings=9, blocks_at_most=3)
    picked = [0, 2, 5]  # np.linspace(0, 5, 3) rounded; 9 readings / 3 blocks = 3 from each
    expected = pd.concat([whole[(whole["seq"] >= firsts[b]) & (whole["seq"] < firsts[b] + 3)] for b in picked])
    pd.testing.assert_frame_equal(sample, expected.reset_index(drop=True))
    every = store.readings_sample(run_id, readings=10_000, blocks_at_most=100)
    pd.testing.assert_frame_equal(every, whole)  # few blocks, a large budget: all of it
    assert sum(sizes) == len(whole)
    pot = store.readings_sample(run_id, readings=4, blocks_at_most=2, kinds=["potentiation"])
    assert set(pot["kind"]) == {"potentiation"} and len(pot) == 4
    assert store.readings_sample(run_id, 10, 5, kinds=["none"]).empty


def test_the_switch_to_wal_waits_for_another_connections_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite refuses ``PRAGMA journal_mode=WAL`` at once, without its busy timeout, while another
    connection holds a write lock (as when several processes open a new file together and one
    of them is creating the schema): the store tries the switch again until the lock is gone."""
    import threading

    from hil.store import database

    path = tmp_path / "new.sqlite"
    Store(path).close()
    plain = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    plain.execute("PRAGMA journal_mode=DELETE")  # the file as a new one is before its first switch
    plain.execute("BEGIN IMMEDIATE")  # another process's write lock, as while it creates the schema
    refused = threading.Event()
    real_sleep = database.time.sleep

    def released_when_refused(seconds: float) -> None:
        if not refused.is_set():  # the switch was refused once: the other writer commits now
            refused.set()
            plain.execute("COMMIT")
        real_sleep(seconds)

    monkeypatch.setattr(database.time, "sleep", released_when_refused)
    with Store(path) as store:
        assert store.conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert refused.is_set()  # it was refused while the lock was held, and tried again
    plain.close()
