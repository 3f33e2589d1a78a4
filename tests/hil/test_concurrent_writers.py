"""Many writers, one database: four protocol runs in four processes and a reader process (``runs``,
``show``, ``export`` in a loop) against one new database, all at once.

Afterwards every reading of every run is there exactly once, with gap-free sequence numbers and
the same values as the same run done alone on the same seed; no process failed, printed a
traceback or met a lock, and the reader read while the writers wrote.

The test is parametrized over the database by the ``db_url`` fixture (``tests/conftest.py``):
SQLite (a WAL file with a busy timeout) and PostgreSQL (a database on the session's server).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from hil.engine import RunEngine
from hil.station import load_station
from hil.store import RunClaimed, Store, database
from hil.store.models import Run

DEADLINE_S = 300
WRITERS = 4
#: every writer: 800 cycles of 8-pulse trains read after every pulse on 4 cells, each cycle
#: its own transactions (a pulse train with its readings, then the reset with the checkpoint)
CYCLES, PULSES, CELLS, N_CELLS = 800, 8, "0:2,0:2", 4
READINGS_PER_RUN = CYCLES * PULSES * N_CELLS
SEEDS = [11, 12, 13, 14]

#: a writer: the real command line, started behind a barrier so that all open the new database at once
WRITER = """
import sys
from hil.cli import main
print("ready", flush=True)
sys.stdin.readline()
db, seed, *sets = sys.argv[1:]
sys.argv = ["rram-hil", "run", "potentiation-cycling", "--db", db, "--seed", seed, "--no-plot"]
for item in sets:
    sys.argv += ["--set", item]
main()
"""
SETS = [f"cycles={CYCLES}", f"pulses={PULSES}", f"cells={CELLS}"]

#: the reader: `runs`, then `show` and `export` of every run listed, round after round, until the
#: stop file appears (then one last round); prints one JSON summary line
READER = """
import json, sys
from pathlib import Path
from typer.testing import CliRunner
from hil.cli import app
from hil.store import database_exists
from sqlalchemy import create_engine, inspect
url, stop, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
runner = CliRunner()
print("ready", flush=True)
sys.stdin.readline()
# a read-only command refuses a database that is not there yet: wait until a writer has created
# it (the schema lands in one transaction: once 'runs' is visible, all of it is)
engine = create_engine(url)
while not stop.exists():
    try:
        if database_exists(url) and inspect(engine).has_table("runs"):
            break
    except Exception:  # a file a writer is creating this instant
        pass
engine.dispose()
rounds, failures, saw_running, exports = 0, [], 0, 0

def call(args):
    result = runner.invoke(app, [*args, "--db", url])
    text = result.output
    bad = result.exit_code != 0 or "Traceback" in text or "locked" in text.lower()
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        bad = True
        text += repr(result.exception)
    if bad:
        failures.append({"args": args, "exit_code": result.exit_code, "output": text[-2000:]})
    return result

last = False
while True:
    last = stop.exists()
    listed = call(["runs", "--json"])
    runs = json.loads(listed.stdout) if listed.exit_code == 0 else []
    saw_running += sum(r["status"] == "running" for r in runs)
    for r in runs:
        call(["show", str(r["id"]), "--json"])
        out = work / f"export-{r['id']}.csv"
        if call(["export", str(r["id"]), "-o", str(out)]).exit_code == 0:
            exports += 1
    rounds += 1
    if last:
        break
print(json.dumps({"rounds": rounds, "failures": failures, "saw_running": saw_running, "exports": exports}))
"""


def start(script: str, *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )


def alone(seed: int, path: Path) -> pd.DataFrame:
    """The readings of the same run done alone on the same seed, in a database of its own."""
    with Store(path) as store:
        params = {"cycles": CYCLES, "pulses": PULSES, "cells": CELLS}
        out = RunEngine(store).run("potentiation-cycling", load_station(None), params, seed=seed, plot=False)
        assert out.status == "completed", out.error
        return store.readings_df(out.run_id)


COMPARED = ["seq", "kind", "array", "row", "col", "cycle", "pulse", "voltage_V", "current_A", "conductance_S"]


def test_four_writers_and_a_reader_lose_nothing_and_double_nothing(db_url: str, tmp_path: Path) -> None:
    work = tmp_path / "reader"
    work.mkdir()
    stop = tmp_path / "stop"
    writers = [start(WRITER, db_url, str(seed), *SETS, cwd=tmp_path) for seed in SEEDS]
    reader = start(READER, db_url, str(stop), str(work), cwd=tmp_path)
    procs = [*writers, reader]
    try:
        for p in procs:  # the barrier: every process is up before any opens the database
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        written = [(p.wait(timeout=DEADLINE_S), *p.communicate(timeout=DEADLINE_S)) for p in writers]
        stop.touch()
        read = (reader.wait(timeout=DEADLINE_S), *reader.communicate(timeout=DEADLINE_S))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()

    run_ids = []
    for code, stdout, stderr in written:
        assert code == 0, stderr
        for text in (stdout, stderr):
            assert "Traceback" not in text and "locked" not in text.lower(), text
        assert stdout.strip().endswith(": completed"), stdout
        run_ids.append(int(stdout.strip().splitlines()[-1].split()[1].rstrip(":")))
    code, stdout, stderr = read
    assert code == 0 and "Traceback" not in stderr, stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["failures"] == [], summary["failures"]
    assert summary["rounds"] >= 2 and summary["exports"] >= WRITERS
    assert summary["saw_running"] >= 1, "the reader never read while a writer wrote"
    assert sorted(run_ids) == [1, 2, 3, 4]

    with Store(db_url) as store:
        assert store.integrity_ok()
        runs = store.runs_df()
        assert list(runs["id"]) == [1, 2, 3, 4] and (runs["status"] == "completed").all()
        assert (runs["readings"] == READINGS_PER_RUN).all()
        for run_id in run_ids:
            info = store.run(run_id)
            assert info.seed is not None and info.seed in SEEDS
            df = store.readings_df(run_id)
            assert len(df) == READINGS_PER_RUN
            assert np.array_equal(
                df["seq"].to_numpy(), np.arange(df["seq"].iloc[0], df["seq"].iloc[0] + len(df))
            )
            pulses = store.pulses_df(run_id)
            seqs = pulses["seq"].to_numpy()
            assert np.array_equal(seqs, np.arange(seqs[0], seqs[0] + len(seqs)))
            expected = alone(info.seed, tmp_path / f"alone-{info.seed}.sqlite")
            pd.testing.assert_frame_equal(
                df[COMPARED].reset_index(drop=True), expected[COMPARED].reset_index(drop=True)
            )
    # the reader's last round came after every writer ended: its exports hold every reading
    for run_id in run_ids:
        exported = pd.read_csv(work / f"export-{run_id}.csv")
        assert len(exported) == READINGS_PER_RUN and exported["seq"].is_unique


def test_a_run_claimed_while_another_process_reaps_it_stays_with_its_new_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes open the database after a run's process died: one marks the run interrupted
    and claims it (a resume, a sweep's next attempt) between the other's look at the stale run and
    its mark. The late mark must not take the run from its new owner (who would then share it
    with the next claimer), and the run is marked interrupted once."""
    path = tmp_path / "runs.sqlite"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)  # a process of this host that has ended (and been waited for)
    with Store(path) as store:
        params = {"cycles": 2, "pulses": 3, "cells": "0,0"}
        run_id = RunEngine(store).run("potentiation-cycling", load_station(None), params, plot=False).run_id
        store.conn.execute(update(Run).where(Run.id == run_id).values(status="running", pid=dead_pid))
        store.conn.commit()

    other = Store(path, reap_stale=False)
    real = database._pid_alive
    raced: list[int] = []

    def alive_but_meanwhile_claimed(pid: int) -> bool:
        if pid == dead_pid and not raced:
            raced.append(pid)
            assert other.reap_stale_runs() == [run_id]  # the other process is quicker: marks it,
            assert other.claim_run(run_id) == "interrupted"  # and claims it
        return real(pid)

    monkeypatch.setattr(database, "_pid_alive", alive_but_meanwhile_claimed)
    with Store(path) as late:  # its reap saw the run running under the dead pid
        assert raced == [dead_pid]
        info = late.run(run_id)
        assert info.status == "running", "the late reap took the run from the process that claimed it"
        with pytest.raises(RunClaimed):
            late.claim_run(run_id)
        assert list(late.events_df(run_id)["kind"]).count("marked-interrupted") == 1
    other.close()
