"""Aborting a run from anywhere: an ``abort-requested`` event in the store (the web application,
``rram-hil abort``, another machine on a shared database), seen by the run's engine at its next
commit and handled as Ctrl-C (safe state, every committed reading kept, ``interrupted``)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hil.backends import build_backend
from hil.cli import app
from hil.engine import RunEngine
from hil.errors import ConfigError
from hil.protocol import Params, Protocol, RunContext
from hil.station import Station, load_station
from hil.store import Store
from hil.store.models import Run
from hil.types import Pulse

ORIGIN = {"via": "test", "client": "elsewhere"}


@pytest.fixture
def station() -> Station:
    return load_station(None)


class Trains(Protocol):
    """Ten pulse trains, each committed; after ``request_after`` of them it asks, through a
    second connection (as another process would), for its own abort."""

    name = "abort-test"
    title = "abort test"

    class Params(Params):
        request_after: int = 3
        db: str = ""

    def execute(self, ctx: RunContext, params: Any) -> None:
        for k in range(10):
            res = ctx.backend.pulse("A", [(0, 0), (1, 1)], Pulse(2.0, 1e-4), 10, read_after=True)
            ctx.log_train(res, purpose="potentiation", cycle=k)
            if k + 1 == params.request_after:
                with Store(params.db, reap_stale=False) as other:
                    other.request_abort(ctx.run_id, ORIGIN)

    def plot(self, store: Store, run_id: int, path: Path) -> None:
        return None


def test_a_request_from_another_connection_stops_the_run_at_its_next_commit(tmp_path: Path, station: Station) -> None:
    db = tmp_path / "abort.sqlite"
    raw: list[Any] = []

    def factory(st: Station, seed: int | None = None) -> Any:
        raw.append(build_backend(st, seed))
        return raw[-1]

    with Store(db) as store:
        engine = RunEngine(store, backend_factory=factory, abort_check_s=0.0)  # look at every commit
        out = engine.run(Trains(), station, {"request_after": 3, "db": str(db)})
        assert out.status == "interrupted"
        assert out.error == "aborted on request from test (elsewhere)"
        # the request came after train 3; train 4's commit saw it: four trains kept, no more
        assert len(store.readings_df(out.run_id)) == 4 * 2 * 10
        kinds = list(store.events_df(out.run_id)["kind"])
        assert kinds == ["abort-requested", "safe-state"]
        safe = store.events_df(out.run_id)["detail"].iloc[-1]
        assert safe["confirmed"] is True and safe["outputs"] == "off"
        assert raw[0].output_on is False and raw[0].safe_state_calls == 1
        assert store.run(out.run_id).status == "interrupted"


def test_without_a_request_the_run_completes(tmp_path: Path, station: Station) -> None:
    with Store(tmp_path / "none.sqlite") as store:
        out = RunEngine(store, abort_check_s=0.0).run(Trains(), station, {"request_after": 0})
        assert out.status == "completed" and len(store.readings_df(out.run_id)) == 10 * 2 * 10
        assert store.after_commit is None  # the watch is gone with the run


class RequestAt:
    """A backend whose ``n``-th pulse train asks for the run's abort from a second connection."""

    def __init__(self, inner: Any, db: Path, n: int) -> None:
        self.inner, self.db, self.n = inner, db, n

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def pulse(self, *args: Any, **kwargs: Any) -> Any:
        self.n -= 1
        if self.n == 0:
            with Store(self.db, reap_stale=False) as other:
                (run_id,) = [r for r in other.runs_df()["id"]][-1:]
                other.request_abort(int(run_id), ORIGIN)
        return self.inner.pulse(*args, **kwargs)


def test_an_aborted_run_resumes_and_its_old_request_is_not_seen_again(tmp_path: Path, station: Station) -> None:
    db = tmp_path / "resume.sqlite"
    params = {"cycles": 5, "pulses": 10}
    with Store(db) as store:
        asking = RunEngine(store, abort_check_s=0.0,
                           backend_factory=lambda st, seed=None: RequestAt(build_backend(st, seed), db, 4))  # fmt: skip
        out = asking.run("potentiation-cycling", station, params, plot=False)
        assert out.status == "interrupted" and out.error == "aborted on request from test (elsewhere)"
        kept = len(store.readings_df(out.run_id))
        assert kept > 0
        resumed = RunEngine(store, abort_check_s=0.0).resume(out.run_id, plot=False)
        assert resumed.status == "completed"
        df = store.readings_df(out.run_id)
        assert sorted(df[df.kind == "potentiation"].cycle.unique()) == [0, 1, 2, 3, 4]
        assert len(df) >= kept and df.seq.is_unique
        assert list(store.events_df(out.run_id)["kind"]).count("abort-requested") == 1


def test_a_run_killed_with_its_abort_pending_ends_interrupted_and_a_second_abort_changes_nothing(
    tmp_path: Path,
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with Store(tmp_path / "killed.sqlite") as store:
        run_id = store.create_run("demo", {}, {"name": "st"}, "twin")
        store.conn.execute(Run.__table__.update().where(Run.id == run_id).values(pid=os.getpid()))
        store.conn.commit()
        store.request_abort(run_id, ORIGIN)  # pending: the process is alive, seeing nothing
        assert store.wait_until_ended(run_id, 0.0) == "running"
        store.conn.execute(Run.__table__.update().where(Run.id == run_id).values(pid=dead.pid))
        store.conn.commit()  # ... and then it is killed (its pid is gone)
        assert store.wait_until_ended(run_id, 30.0) == "interrupted"
        before = store.events_df(run_id)
        assert list(before["kind"]) == ["abort-requested", "marked-interrupted"]
        with pytest.raises(ConfigError, match="is 'interrupted', not running; nothing changed"):
            store.request_abort(run_id, ORIGIN)
        assert store.events_df(run_id).equals(before)


def test_a_paused_writer_holding_the_lock_gets_a_one_line_answer(tmp_path: Path) -> None:
    """A run stopped inside a write holds SQLite's lock: the request cannot be recorded (one line)."""
    db = tmp_path / "locked.sqlite"
    with Store(f"sqlite:///{db}?timeout=0.2") as store:
        run_id = store.create_run("demo", {}, {"name": "st"}, "twin")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(ConfigError, match=r"^abort: .*locked.*nothing was changed; try again$"):
                store.request_abort(run_id, {"via": "test"})
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert list(store.events_df(run_id)["kind"]) == []


def _count(db: str, run_id: int) -> int:
    """The run's readings so far (0 while its database or schema is not there yet)."""
    try:
        with Store(db, reap_stale=False, must_exist=True) as store:
            return store.count_readings(run_id)
    except Exception:
        return 0


def test_rram_hil_abort_stops_a_run_of_another_process(db_url: str, tmp_path: Path) -> None:
    """``rram-hil run`` in one process, ``rram-hil abort`` in this one: on SQLite and on a
    PostgreSQL server (where the two could be on different machines)."""
    exe = Path(sys.executable).with_name("rram-hil")
    proc = subprocess.Popen([str(exe), "run", "potentiation-cycling", "--db", db_url, "--set", "cycles=1000000",
                             "--no-plot"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        seen = 0
        while seen < 500 and time.monotonic() < deadline and proc.poll() is None:
            seen = _count(db_url, 1)
        assert seen >= 500, proc.stderr.read() if proc.poll() is not None and proc.stderr else seen
        res = CliRunner().invoke(app, ["abort", "1", "--db", db_url], catch_exceptions=False)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert res.exit_code == 0 and res.output.strip() == "run 1 interrupted", res.output
    assert proc.returncode == 130, stderr
    with Store(db_url, must_exist=True) as store:
        info = store.run(1)
        assert info.status == "interrupted" and info.error.startswith("aborted on request from cli (")
        assert store.count_readings(1) >= seen
        events = store.events_df(1)
        assert list(events["kind"])[-2:] == ["abort-requested", "safe-state"]
        assert events["detail"].iloc[-2]["origin"]["via"] == "cli"
        assert events["detail"].iloc[-1]["confirmed"] is True
    again = CliRunner().invoke(app, ["abort", "1", "--db", db_url], catch_exceptions=False)
    assert again.exit_code == 2
    assert again.output.strip() == "error: abort: run 1 is 'interrupted', not running; nothing changed"


def test_resume_of_a_search_run_names_the_command_that_continues_it(tmp_path: Path) -> None:
    db = tmp_path / "search.sqlite"
    with Store(db) as store:
        run_id = store.create_run("choi2021-search", {}, {"name": "twin"}, "twin")
        store.finish_run(run_id, "interrupted")
    res = CliRunner().invoke(app, ["resume", str(run_id), "--db", str(db)], catch_exceptions=False)
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"error: resume: run {run_id} is a choi2021 search; continue it with "
        f"'rram-hil reproduce choi2021 --resume-search {run_id}'"
    )


def test_rram_hil_abort_of_a_run_that_does_not_stop_in_time_says_it_is_pending(tmp_path: Path) -> None:
    db = tmp_path / "pending.sqlite"
    with Store(db) as store:  # a run "running" in this (living) process, which never commits again
        run_id = store.create_run("demo", {}, {"name": "st"}, "twin")
    res = CliRunner().invoke(app, ["abort", str(run_id), "--db", str(db), "--wait", "0"], catch_exceptions=False)
    assert res.exit_code == 0
    assert res.output.strip() == f"abort: requested; run {run_id} has not stopped yet (it stops at its next commit)"
    with Store(db) as store:
        assert store.run(run_id).status == "running"
        assert store.abort_request(run_id) is not None
    bad = CliRunner().invoke(app, ["abort", str(run_id), "--db", str(db), "--wait", "-1"], catch_exceptions=False)
    assert bad.exit_code == 2 and "--wait" in bad.output
