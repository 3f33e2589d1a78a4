"""``rram-hil reproduce choi2021 --scheduler`` on a real Dask cluster: a ``dask scheduler`` process
and two ``dask worker`` processes started here (not a LocalCluster), every worker writing to the
one database of ``--db`` (the ``db_url`` fixture: a SQLite file, and a database on the session's
PostgreSQL server).

The sweep's table completes with one completed run per case and nothing doubled; a worker killed
(SIGKILL) in the middle of a case has the case continued on the other worker: the new attempt
finds the case's run by its ``sweep-case`` tag and resumes it from its checkpoint, so the case
keeps its one run, resumed exactly once. Without a cluster: an attempt that finds the case's
completed run reuses it, and one that finds it interrupted resumes it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from hil.cli import app
from hil.store import RunClaimed, Store
from hil.store.models import Run
from hil.store.training import epochs_df
from protocols.training.choi2021 import SWEEP_EVENT, case_parameters, case_runs, run_case, select_cases
from tests.helpers import DaskProcesses, dask_processes, write_tiny_mnist

DEADLINE_S = 300
TINY = ["--set", "hidden=4", "--set", "eval_batch=10"]


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    with dask_processes(tmp_path / "dask", n_workers=2) as procs:
        yield procs


def sweep_runs(db_url: str) -> pd.DataFrame:
    """Every run in the database: its owner, resumes, and the cases it is tagged with."""
    with Store(db_url, reap_stale=False) as store:
        runs = pd.read_sql_query(select(Run.id, Run.protocol, Run.status, Run.pid, Run.resumes), store.conn)
        tags = []
        for run_id in runs["id"]:
            ev = store.events_df(int(run_id))
            tags.append(
                [d["case"] for k, d in zip(ev["kind"], ev["detail"], strict=True) if k == SWEEP_EVENT]
            )
    return runs.assign(cases=tags)


def test_a_sweep_on_a_scheduler_and_two_worker_processes(
    cluster: DaskProcesses, db_url: str, tmp_path: Path
) -> None:
    data = write_tiny_mnist(tmp_path / "mnist", 60, 20)
    out = tmp_path / "out"
    cases = ["fp", "single_s10", "c2c_0.34", "hybrid_s50_k10", "hybrid_s10_k10"]
    result = CliRunner().invoke(app, [
        "reproduce", "choi2021", "--scheduler", cluster.address, "--db", db_url, "--epochs", "1",
        "--train-limit", "30", "--test-limit", "20", "--out", str(out), "--data-dir", str(data),
        "--cases", ",".join(cases), *TINY,
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"on {cluster.address}" in result.output
    table = pd.read_csv(out / "table.csv")
    assert list(table["case"]) == cases
    assert (table["status"] == "completed").all() and (table["epochs"] == 1).all()
    assert table["measured_test_accuracy"].notna().all()
    # c2c_0.34 is the main hybrid case (the same parameters): one run for both rows
    assert table.set_index("case").loc[["c2c_0.34", "hybrid_s50_k10"], "run_id"].nunique() == 1
    assert table["run_id"].nunique() == 4
    runs = sweep_runs(db_url)
    assert len(runs) == 4, runs  # one run per distinct case, nothing doubled
    assert (runs["status"] == "completed").all() and (runs["resumes"] == 0).all()
    assert set(runs["id"]) == set(table["run_id"])
    assert sorted(c for tags in runs["cases"] for c in tags) == [
        "c2c_0.34",
        "fp",
        "hybrid_s10_k10",
        "single_s10",
    ]
    # the runs were written by the worker processes (both of them), not by this one
    assert set(runs["pid"]) <= cluster.worker_pids and os.getpid() not in set(runs["pid"])
    assert len(set(runs["pid"])) == 2
    with Store(db_url, reap_stale=False) as store:
        for run_id in runs["id"]:
            assert list(epochs_df(store, int(run_id))["epoch"]) == [0, 1]


def test_a_worker_killed_mid_case_has_its_run_resumed_on_the_other(
    cluster: DaskProcesses, db_url: str, tmp_path: Path
) -> None:
    # long enough cases (3,000 images, 2 epochs) that one is caught between its epochs 0 and 2
    data = write_tiny_mnist(tmp_path / "mnist", 3000, 20)
    out = tmp_path / "out"
    cases = ["single_s10", "hybrid_s50_k10", "hybrid_s10_k10"]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "hil.cli", "reproduce", "choi2021", "--scheduler", cluster.address,
         "--db", db_url, "--epochs", "2", "--test-limit", "20", "--out", str(out), "--data-dir", str(data),
         "--cases", ",".join(cases), *TINY],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    victim: tuple[int, int] | None = None  # (run id, worker pid)
    try:
        deadline = time.monotonic() + DEADLINE_S
        store: Store | None = None
        while victim is None and time.monotonic() < deadline and sweep.poll() is None:
            try:
                store = store or Store(db_url, reap_stale=False, must_exist=True)
            except Exception:  # not created yet by the first worker
                continue
            rows = store.conn.execute(select(Run.id, Run.pid).where(Run.status == "running")).all()
            for row in rows:
                state = store.load_checkpoint(row.id)
                if state is not None and state.get("epoch", 99) < 2 and row.pid in cluster.worker_pids:
                    victim = (int(row.id), int(row.pid))
                    break
            store.conn.rollback()  # no snapshot kept between polls
        if store is not None:
            store.close()
        assert victim is not None, "no case was caught between its epochs"
        run_id, pid = victim
        worker = next(w for w in cluster.workers if w.pid == pid)
        worker.send_signal(signal.SIGKILL)  # the worker dies mid-case
        worker.wait(timeout=DEADLINE_S)  # and is reaped (a zombie's pid would still look alive)
        code = sweep.wait(timeout=DEADLINE_S)
        stdout, stderr = sweep.communicate(timeout=DEADLINE_S)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert code == 0, stdout + stderr
    assert "Traceback" not in stdout + stderr
    table = pd.read_csv(out / "table.csv")
    assert list(table["case"]) == cases and (table["status"] == "completed").all()
    assert (table["epochs"] == 2).all() and table["run_id"].is_unique
    runs = sweep_runs(db_url)
    assert len(runs) == len(cases), runs  # no second run of the killed case
    assert (runs["status"] == "completed").all()
    assert sorted(c for tags in runs["cases"] for c in tags) == sorted(cases)
    assert run_id in set(table["run_id"])
    killed = runs.set_index("id").loc[run_id]
    # resumed exactly once, by the other worker; every other run ran once
    assert killed["resumes"] == 1 and killed["pid"] in cluster.worker_pids - {pid}
    assert (runs.set_index("id").drop(index=run_id)["resumes"] == 0).all()
    with Store(db_url, reap_stale=False) as store:
        kinds = list(store.events_df(run_id)["kind"])
        assert kinds.count("resumed") == 1 and "marked-interrupted" in kinds
        for rid in runs["id"]:
            assert list(epochs_df(store, int(rid))["epoch"]) == [0, 1, 2]


# ------------------------------------------------------------------ the case function alone (no cluster)
def tiny_case(tmp_path: Path, name: str = "single_s10") -> tuple[str, dict[str, Any]]:
    data = write_tiny_mnist(tmp_path / "mnist", 40, 20)
    common = {
        "epochs": 1,
        "train_limit": 30,
        "test_limit": 20,
        "data_dir": str(data),
        "hidden": 4,
        "eval_batch": 10,
    }
    return name, case_parameters(select_cases(name)[0], common)


def test_a_second_attempt_of_a_completed_case_reuses_its_run(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    name, params = tiny_case(tmp_path)
    first = run_case(name, params, db, sweep="s1")
    again = run_case(name, params, db, sweep="s1")
    assert again["run_id"] == first["run_id"] and again["status"] == "completed"
    assert again["measured_test_accuracy"] == first["measured_test_accuracy"]
    other = run_case(name, params, db, sweep="s2")  # another sweep: a run of its own
    assert other["run_id"] != first["run_id"]
    with Store(db) as store:
        assert len(store.runs_df()) == 2
        assert case_runs(store, "s1", name) == [first["run_id"]]
        assert case_runs(store, "s2", name) == [other["run_id"]]


def test_a_second_attempt_of_an_interrupted_case_resumes_its_run(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    name, params = tiny_case(tmp_path)
    first = run_case(name, params, db, sweep="s1")
    with Store(db) as store:
        store.finish_run(first["run_id"], "interrupted", "the worker died")
    again = run_case(name, params, db, sweep="s1")
    assert again["run_id"] == first["run_id"] and again["status"] == "completed"
    with Store(db) as store:
        assert len(store.runs_df()) == 1 and store.run(first["run_id"]).resumes == 1


def test_a_case_run_lost_on_another_host_is_taken_over_and_one_alive_here_is_refused(tmp_path: Path) -> None:
    db = str(tmp_path / "runs.sqlite")
    name, params = tiny_case(tmp_path)
    first = run_case(name, params, db, sweep="s1")
    run_id = first["run_id"]
    with Store(db) as store:  # as a live process of this host owns it
        store.conn.execute(update(Run).where(Run.id == run_id).values(status="running", pid=os.getpid()))
        store.conn.commit()
    with pytest.raises(RunClaimed, match="already running"):
        run_case(name, params, db, sweep="s1")
    with Store(db) as store:  # as a worker on another machine, which Dask gave up, owned it
        store.conn.execute(update(Run).where(Run.id == run_id).values(hostname="lost-worker-host"))
        store.conn.commit()
    again = run_case(name, params, db, sweep="s1")
    assert again["run_id"] == run_id and again["status"] == "completed"
    with Store(db) as store:
        kinds = list(store.events_df(run_id)["kind"])
        assert kinds.count("taken-over") == 1 and kinds.count("resumed") == 1
        assert store.run(run_id).resumes == 1 and len(store.runs_df()) == 1


def test_a_scheduler_that_does_not_answer_is_one_line_and_creates_no_database(tmp_path: Path) -> None:
    import dask

    with socket.socket() as s:  # a free port that nothing listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    db = tmp_path / "runs.sqlite"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        result = CliRunner().invoke(app, [
            "reproduce", "choi2021", "--scheduler", address, "--db", str(db), "--out", str(tmp_path / "out"),
            "--data-dir", str(write_tiny_mnist(tmp_path / "mnist", 40, 20)), "--cases", "fp", "--epochs", "1",
        ])  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith(f"error: --scheduler: no Dask scheduler answers at {address}"), result.output
    assert "Traceback" not in result.output and not db.exists()
