"""PostgreSQL as a first-class store, against a real server that the suite starts itself
(:class:`tests.helpers.PostgresServer`): the store's own tests, schema creation and migrations,
run ownership, and every command's ``--db postgresql+psycopg://...``.

Where the server binaries are missing these tests fail (the fixture raises); they never skip.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from typer.testing import CliRunner

from hil.cli import app
from hil.engine import RunEngine
from hil.store import HEAD, RunClaimed, SchemaError, SchemaTooNew, Store, database_info, upgrade_database
from hil.store.models import Base
from hil.store.schema import alembic_config, locked
from tests import helpers
from tests.hil import test_migrations, test_run_claim, test_store


def store_only_tests(module: Any) -> list[Any]:
    """The tests of ``module`` that take nothing but the ``store`` fixture: each runs here again,
    on a PostgreSQL store (found by signature, so a test added there is run here too)."""
    found = [
        pytest.param(fn, id=name)
        for name, fn in vars(module).items()
        if name.startswith("test_") and callable(fn) and list(inspect.signature(fn).parameters) == ["store"]
    ]
    assert found, f"{module.__name__} has no store-only tests"
    return found


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    s = Store(pg_url)
    yield s
    s.close()


@pytest.mark.parametrize("case", store_only_tests(test_store) + store_only_tests(test_migrations))
def test_store_tests_on_postgresql(case: Callable[[Store], None], pg_store: Store) -> None:
    case(pg_store)


def _run(store: Store) -> int:
    return store.create_run("demo", {"a": 1}, {"name": "st"}, "twin", {"backend": "twin"}, seed=3)


def _readings(store: Store, run_id: int, n: int, start: int = 0) -> int:
    seq = np.arange(start, start + n)
    return store.add_readings(
        {"run_id": run_id, "seq": seq, "array": "A", "row": seq % 8, "col": seq // 8 % 8, "voltage_V": 0.2,
         "current_A": seq * 1e-9, "conductance_S": seq * 5e-9, "t_s": seq * 1e-3, "cycle": seq // 10}
    )  # fmt: skip


def test_the_same_dataframes_as_on_sqlite(tmp_path: Any, pg_store: Store) -> None:
    lite = Store(tmp_path / "same.sqlite")
    try:
        frames = []
        for store in (lite, pg_store):
            run_id = _run(store)
            assert _readings(store, run_id, 250) == 250
            store.add_pulses({"run_id": run_id, "seq": [0, 1], "array": "A", "row": 1, "col": 2,
                              "amplitude_V": 2.0, "width_s": 1e-4, "count": 50, "t_s": 0.0})  # fmt: skip
            store.add_event(run_id, "compliance", {"compliance_A": 1e-4, "nested": [1, {"a": None}]}, t_s=0.1)
            store.save_checkpoint(run_id, {"next_cycle": 3, "cells": [[0, 1]]})
            store.finish_run(run_id, "completed")
            info = store.run(run_id)
            frames.append(
                (
                    store.readings_df(run_id),
                    store.pulses_df(run_id),
                    pd.concat(list(store.iter_readings(run_id, chunk_rows=64)), ignore_index=True),
                    store.runs_df().drop(columns=["started_at", "ended_at"]),
                    store.events_df(run_id)[["t_s", "kind", "detail"]],
                    store.load_checkpoint(run_id),
                    (info.parameters, info.station, info.backend_info, info.status, store.count_readings(run_id)),
                )
            )
            assert info.started_at.tzinfo is None and info.ended_at is not None  # UTC, on both
            assert store.runs_df()["started_at"].dt.tz is None
        for a, b in zip(*frames, strict=True):
            if isinstance(a, pd.DataFrame):
                pd.testing.assert_frame_equal(a, b)
            else:
                assert a == b
    finally:
        lite.close()


def test_schema_is_created_at_head_and_described(pg_url: str) -> None:
    with Store(pg_url) as store:
        assert store.schema.version == HEAD and not store.is_sqlite
        run_id = _run(store)
        _readings(store, run_id, 40)
    info = database_info(pg_url)
    assert (info.version, info.runs, info.readings, info.up_to_date) == (HEAD, 1, 40, True)
    assert info.size_bytes is not None and info.size_bytes > 1_000_000  # pg_database_size: a real figure
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        kinds = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("runs")}
        assert kinds["started_at"] == "TIMESTAMP" and kinds["parameters"] == "JSON"
    engine.dispose()


def test_migrations_from_nothing_make_the_created_schema(postgres_server: helpers.PostgresServer) -> None:
    """Every migration runs on PostgreSQL, and head made by them equals head made by the models."""
    created, migrated = postgres_server.create_database("created"), postgres_server.create_database("migrated")
    Store(created).close()
    engine = sa.create_engine(migrated)
    with locked(engine) as conn:
        command.upgrade(alembic_config(conn), "head")
    engine.dispose()

    def shape(url: str) -> dict[str, Any]:
        e = sa.create_engine(url)
        with e.connect() as conn:
            insp = sa.inspect(conn)
            found = {
                t: (
                    sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(t)),
                    sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(t)),
                )
                for t in insp.get_table_names()
            }
            found["version"] = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
        e.dispose()
        return found

    assert shape(created) == shape(migrated)
    assert shape(created)["version"] == [HEAD]


def test_an_old_database_on_the_server_is_upgraded_with_every_row(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    with locked(engine) as conn:
        command.upgrade(alembic_config(conn), "0001")  # the schema of 0.1.0 ...
        conn.exec_driver_sql("DROP TABLE alembic_version")  # ... which carried no version
        conn.exec_driver_sql(
            "INSERT INTO runs (protocol, parameters, station, station_name, backend, backend_info, "
            "package_version, started_at, status, resumes) VALUES ('demo', '{}', '{}', 'st', 'twin', '{}', "
            "'0.1.0', now(), 'completed', 0)"
        )
        conn.exec_driver_sql(
            "INSERT INTO readings (run_id, seq, kind, \"array\", \"row\", col, \"voltage_V\", \"current_A\", t_s) "
            "SELECT 1, s, 'read', 'A', 0, 0, 0.2, 1e-6, s FROM generate_series(0, 99) AS s"
        )
    engine.dispose()
    with pytest.raises(SchemaError, match="no schema version"):
        Store(pg_url)
    done = upgrade_database(pg_url)
    assert (done.before, done.after) == (None, HEAD)
    with Store(pg_url) as store:
        assert store.count_readings(1) == 100 and store.run(1).status == "completed"
        assert list(store.readings_df(1)["seq"]) == list(range(100))


def test_a_newer_or_foreign_database_is_refused_unchanged(postgres_server: helpers.PostgresServer) -> None:
    newer = postgres_server.create_database("newer")
    Store(newer).close()
    engine = sa.create_engine(newer)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    engine.dispose()
    with pytest.raises(SchemaTooNew, match="0099, newer than this rram-hil knows"):
        Store(newer)

    foreign = postgres_server.create_database("foreign")
    engine = sa.create_engine(foreign)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id serial PRIMARY KEY, body text)")
    with pytest.raises(SchemaError, match="is not an rram-hil database"):
        Store(foreign)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == ["notes"]
    engine.dispose()


def test_four_processes_create_one_new_server_database_at_once(pg_url: str) -> None:
    """The schema's creation lock on PostgreSQL (a transaction-level advisory lock)."""
    results = test_migrations.released_together(test_migrations.OPENER, pg_url)  # type: ignore[arg-type]
    for code, out, err in results:
        assert code == 0, err
        assert out.split() == [HEAD, "0"]
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [HEAD]
    engine.dispose()


def test_a_claimed_run_cannot_be_claimed_again(pg_url: str) -> None:
    run_id = test_run_claim.interrupted_run(pg_url)  # type: ignore[arg-type]
    with Store(pg_url) as first, Store(pg_url) as second:
        assert first.claim_run(run_id) == "interrupted"
        with pytest.raises(RunClaimed, match=f"resume: run {run_id} is already running \\(pid "):
            second.claim_run(run_id)
        first.release_run(run_id, "interrupted")
        out = RunEngine(second).resume(run_id, plot=False)
        assert out.status == "completed" and second.run(run_id).resumes == 1
        df = second.readings_df(run_id)
        assert df.seq.is_unique and df.seq.is_monotonic_increasing


def test_every_command_takes_a_server_url(pg_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    runner = CliRunner()

    def cli(*args: str) -> Any:
        res = runner.invoke(app, [*args, "--db", pg_url], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    assert "run 1: completed" in cli("run", "iv-sweep", "--no-plot")
    assert "run 2: interrupted" not in cli("run", "potentiation-cycling", "--set", "cycles=2", "--no-plot")
    test_run_claim.interrupted_run(pg_url)  # type: ignore[arg-type]  # run 3
    listing = cli("runs", "--json")
    assert [r["status"] for r in json.loads(listing)] == ["completed", "completed", "interrupted"]
    assert "iv-sweep" in cli("show", "1")
    exported = cli("export", "1")
    assert exported.splitlines()[0].startswith("run_id,seq,kind,array,row,col,voltage_V")
    assert "run 3: completed" in cli("resume", "3", "--no-plot")
    # analyze in its own process (in this one, CPython 3.11.7 later fails to compile modules after
    # it: "AST constructor recursion depth mismatch", a bug of the interpreter, not of the store)
    analysed = subprocess.run(
        [sys.executable, "-m", "hil.cli", "analyze", "1", "--json", "--db", pg_url],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert analysed.returncode == 0, analysed.stderr
    assert json.loads(analysed.stdout)["run_id"] == 1
    info = cli("db", "info")
    assert f"schema version: {HEAD}; head {HEAD}: up to date" in info and "runs: 3" in info
    assert "size: " in info and "unknown" not in info
    assert "nothing to do" in cli("db", "upgrade")
    with Store(pg_url) as store:
        assert list(store.runs_df()["status"]) == ["completed"] * 3


READ_ONLY_ROLE = """
CREATE ROLE {role} LOGIN;
GRANT CONNECT ON DATABASE "{db}" TO {role};
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role};
"""  # the statements of the README's lab-server section


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_a_read_only_role_lists_exports_reports_and_plots(
    postgres_server: helpers.PostgresServer, tmp_path: Any
) -> None:
    url = postgres_server.create_database("shared")
    name = url.rsplit("/", 1)[1]
    with Store(url) as store:
        helpers.run(store, "iv-sweep", helpers.twin_station())
        stale = store.create_run("iv-sweep", {}, {"name": "st"}, "twin")
        store.conn.exec_driver_sql(f"UPDATE runs SET pid = {_dead_pid()} WHERE id = {stale}")
        store.conn.commit()
    role = f"reader_{name}"
    for statement in READ_ONLY_ROLE.format(role=role, db=name).strip().splitlines():
        postgres_server.execute(statement, database=name)
    reader = url.replace(f"//{helpers.PG_SUPERUSER}@", f"//{role}@")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    env.pop("RRAM_HIL_DB", None)

    def rram(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hil.cli", *args, "--db", reader],
            capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
        )  # fmt: skip

    listing = rram("runs", "--json")
    assert listing.returncode == 0, listing.stderr
    assert [r["status"] for r in json.loads(listing.stdout)] == ["completed", "running"]  # not reaped by a reader
    for args in (["show", "1"], ["export", "1", "-o", "r.csv"], ["analyze", "1", "--json"],
                 ["report", "1", "-o", "r.html"], ["plot", "1", "-o", "p.png"]):  # fmt: skip
        done = rram(*args)
        assert done.returncode == 0, (args, done.stderr)
    assert all((tmp_path / f).stat().st_size > 0 for f in ("r.csv", "r.html", "p.png"))
    refused = rram("run", "iv-sweep", "--no-plot")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "permission denied for table runs" in lines[0], refused.stderr
    with Store(url) as store:  # the owner's role reaps it
        assert list(store.runs_df()["status"]) == ["completed", "interrupted"]


def test_the_server_fixture_fails_loudly_without_the_binaries(tmp_path: Any) -> None:
    with pytest.raises(RuntimeError, match=r"apt-get install -y postgresql-15\); the PostgreSQL tests need"):
        helpers.PostgresServer(bin_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_two_concurrent_resumes_on_the_server_one_completes_the_other_is_refused(pg_url: str, tmp_path: Any) -> None:
    run_id = test_run_claim.interrupted_run(pg_url, cycles=40, pulses=50, after=6)  # type: ignore[arg-type]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", test_run_claim.RESUMER, str(run_id), pg_url],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        for _ in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [(p.wait(timeout=300), *p.communicate(timeout=300)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert sorted(code for code, _, _ in results) == [0, 2], results
    (_, won, _), (_, _, lost) = sorted(results, key=lambda r: r[0])
    assert f"run {run_id}: completed" in won
    assert lost.strip().startswith(f"error: resume: run {run_id} is ") and len(lost.strip().splitlines()) == 1
    with Store(pg_url) as store:
        assert store.run(run_id).status == "completed" and store.run(run_id).resumes == 1
        df = store.readings_df(run_id)
        assert df.seq.is_unique and df.seq.is_monotonic_increasing
        done = df[df.kind == "potentiation"]
        assert sorted(done.cycle.unique()) == list(range(40)) and done.groupby("cycle").size().nunique() == 1
