"""``rram-hil db copy SRC DST``: a bench's SQLite file into the lab's PostgreSQL server (and into
another SQLite file): every run whole, its identity kept, nothing doubled when copied again, a
run changed since the last copy replaced, both schema versions checked."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.engine import RunEngine
from hil.store import HEAD, Store
from hil.store.copy import ROW_TABLES
from hil.store.models import Base
from hil.store.training import EpochRecord, commit_epoch, epochs_df, load_snapshot, tracked_df
from tests import helpers
from tests.hil import test_run_claim

FIXTURE = Path(__file__).parents[1] / "fixtures" / "rram-hil-0.1.0.sqlite"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def bench(path: Path) -> dict[str, int]:
    """A bench's database: an I-V sweep, potentiation cycles, an interrupted run, a run with
    training rows, and one still running (this process owns it)."""
    ids: dict[str, int] = {}
    with Store(path) as store:
        ids["iv"] = helpers.run(store, "iv-sweep", helpers.twin_station()).run_id
        ids["cycles"] = helpers.run(store, "potentiation-cycling", helpers.twin_station(), cycles=2).run_id
    ids["interrupted"] = test_run_claim.interrupted_run(path)
    with Store(path) as store:
        trained = store.create_run("hybrid-training", {"epochs": 1}, {"name": "st"}, "twin")
        commit_epoch(
            store,
            trained,
            EpochRecord(
                epoch={"epoch": 0, "phase": "init", "train_accuracy": 0.1, "test_accuracy": 0.1, "mse": 1.0},
                arrays=[{"array": "A", "pulses": 3, "update_frequency": 0.5}],
                snapshots={("A", "conductance"): np.full((2, 3), 5e-6)},
                tracked=[{"sample": 0, "layer": 0, "row": 1, "col": 1, "weight": 0.25}],
                weight_errors=[{"layer": 0, "bin_lo": 0.0, "bin_hi": 0.1, "count": 7}],
                checkpoint={"epoch": 0},
            ),
        )
        store.finish_run(trained, "completed")
        ids["trained"] = trained
        ids["running"] = store.create_run("iv-sweep", {}, {"name": "st"}, "twin")
    return ids


def run_contents(store: Store, run_id: int) -> dict[str, Any]:
    """Everything of a run but its id (the destination numbers runs its own way)."""
    info = store.run(run_id)
    events = store.events_df(run_id).drop(columns=["at"])
    return {
        "info": {k: v for k, v in vars(info).items() if k != "id"},
        "readings": store.readings_df(run_id).drop(columns=["run_id"]),
        "pulses": store.pulses_df(run_id).drop(columns=["run_id"]),
        "events": events,
        "checkpoint": store.load_checkpoint(run_id),
        "artifacts": store.artifacts(run_id),
        "epochs": epochs_df(store, run_id).drop(columns=["id", "run_id", "at"], errors="ignore"),
        "tracked": tracked_df(store, run_id).drop(columns=["id", "run_id"], errors="ignore"),
    }


def assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], pd.DataFrame):
            pd.testing.assert_frame_equal(a[key].reset_index(drop=True), b[key].reset_index(drop=True), obj=key)
        else:
            assert a[key] == b[key], key


@pytest.fixture(params=["sqlite", "postgresql"])
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The destination: a new SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "lab.sqlite")
    server: helpers.PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database("lab")


def test_copy_is_whole_idempotent_and_updates_a_changed_run(tmp_path: Path, lab: str) -> None:
    src = tmp_path / "bench.sqlite"
    ids = bench(src)
    with Store(lab) as store:  # the lab already has a run of another bench
        helpers.run(store, "iv-sweep", helpers.twin_station(seed=7))

    with Store(src, reap_stale=False) as bench_store:
        copied = [ids[k] for k in ("iv", "cycles", "interrupted", "trained")]
        readings = sum(bench_store.count_readings(i) for i in copied)
        pulses = sum(bench_store.count_pulses(i) for i in copied)
    assert readings > 300 and pulses > 0
    res = cli("db", "copy", str(src), lab)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert lines[0].endswith(
        f": 4 runs copied, 0 updated, 0 already there ({readings} readings, {pulses} pulses written)"
    )
    assert lines[1] == "copied (SRC id->DST id): 1->2, 2->3, 3->4, 4->5"
    assert lines[2] == "still running, not copied: 5"
    with Store(src, reap_stale=False) as bench_store, Store(lab, reap_stale=False) as lab_store:
        for src_id, dst_id in ((ids["iv"], 2), (ids["cycles"], 3), (ids["interrupted"], 4), (ids["trained"], 5)):
            assert_same(run_contents(bench_store, src_id), run_contents(lab_store, dst_id))
        assert np.array_equal(
            load_snapshot(lab_store, 5, 0, "A", "conductance"), load_snapshot(bench_store, 4, 0, "A", "conductance")
        )
        total = lab_store.runs_df()["readings"].sum()
        for name in ROW_TABLES:
            assert name in Base.metadata.tables

    res = cli("db", "copy", str(src), lab)  # again: nothing doubled
    assert res.exit_code == 0, res.output
    assert ": 0 runs copied, 0 updated, 4 already there (0 readings, 0 pulses written)" in res.output
    with Store(lab, reap_stale=False) as lab_store:
        assert len(lab_store.runs_df()) == 5 and lab_store.runs_df()["readings"].sum() == total

    with Store(src, reap_stale=False) as bench_store:  # the interrupted run is resumed at the bench
        assert RunEngine(bench_store).resume(ids["interrupted"], plot=False).status == "completed"
    res = cli("db", "copy", str(src), lab)
    assert res.exit_code == 0, res.output
    assert ": 0 runs copied, 1 updated, 3 already there" in res.output
    assert "updated, changed since the last copy: 3->6" in res.output
    with Store(src, reap_stale=False) as bench_store, Store(lab, reap_stale=False) as lab_store:
        assert list(lab_store.runs_df()["id"]) == [1, 2, 3, 5, 6]
        assert lab_store.run(6).status == "completed"
        assert_same(run_contents(bench_store, ids["interrupted"]), run_contents(lab_store, 6))


def test_copy_checks_both_schema_versions_and_refuses_one_database(tmp_path: Path) -> None:
    src = tmp_path / "bench.sqlite"
    Store(src).close()
    old = tmp_path / "old.sqlite"
    shutil.copyfile(FIXTURE, old)
    for args in ((str(src), str(old)), (str(old), str(src))):
        res = CliRunner().invoke(app, ["db", "copy", *args])
        assert res.exit_code == 2
        assert res.output.strip() == (
            f"error: db: '{old}' was written by rram-hil 0.1.0 (no schema version; this rram-hil needs "
            f"{HEAD}): run `rram-hil db upgrade --db {old}`"
        )
    res = CliRunner().invoke(app, ["db", "copy", str(src), str(src)])
    assert res.exit_code == 2 and "are the same database" in res.output
    res = CliRunner().invoke(app, ["db", "copy", str(tmp_path / "missing.sqlite"), str(src)])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not (tmp_path / "missing.sqlite").exists()


def test_copy_into_a_server_never_shows_its_password(tmp_path: Path, postgres_server: helpers.PostgresServer) -> None:
    src = tmp_path / "bench.sqlite"
    with Store(src) as store:
        helpers.run(store, "iv-sweep", helpers.twin_station())
    name = postgres_server.create_database("secret").rsplit("/", 1)[1]
    url = postgres_server.url(name, password="s3cret-pw")  # trust authentication: any password does
    res = cli("db", "copy", str(src), url)
    assert res.exit_code == 0, res.output
    assert "s3cret-pw" not in res.output and f"{helpers.PG_SUPERUSER}:***@" in res.output


def test_a_server_in_another_time_zone_copies_back_to_the_same_runs(
    tmp_path: Path, postgres_server: helpers.PostgresServer
) -> None:
    """SQLite -> PostgreSQL (whose sessions run in Tokyo time) -> SQLite: the same runs, the same
    instants (times read back as naive UTC everywhere)."""
    src = tmp_path / "bench.sqlite"
    with Store(src) as store:
        helpers.run(store, "potentiation-cycling", helpers.twin_station(), cycles=2)
    lab = postgres_server.create_database("tokyo")
    postgres_server.execute(f"ALTER DATABASE {lab.rsplit('/', 1)[1]} SET timezone TO 'Asia/Tokyo'")
    back = tmp_path / "back.sqlite"
    for a, b in ((str(src), lab), (lab, str(back))):
        res = cli("db", "copy", a, b)
        assert res.exit_code == 0 and ": 1 runs copied, 0 updated, 0 already there" in res.output, res.output
    with Store(src) as one, Store(lab) as two, Store(back) as three:
        assert two.conn.exec_driver_sql("SHOW timezone").scalar() == "Asia/Tokyo"
        assert_same(run_contents(one, 1), run_contents(two, 1))
        assert_same(run_contents(one, 1), run_contents(three, 1))
        assert one.events_df(1)["at"].tolist() == three.events_df(1)["at"].tolist() == two.events_df(1)["at"].tolist()
    res = cli("db", "copy", lab, str(back))
    assert ": 0 runs copied, 0 updated, 1 already there" in res.output
