"""Every database fault is one line (exit status != 0, no traceback), and nothing is written
where it should not be: a damaged or foreign file is refused byte for byte unchanged (its
journal mode too), a read-only file or folder, a lock held by another program, a directory,
an empty or unknown URL, a missing driver, a server that is not there. A lock taken in the
middle of a run ends the run ``failed`` with the cause recorded, not left ``running``.

The commands run in their own processes (``python -m hil.cli``), as a user runs them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.store import Store
from tests import helpers

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 120
#: root ignores file modes: a read-only test drops the capabilities that let it (util-linux setpriv)
DROP_ROOT_POWERS = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def rram(*args: str, cwd: Path, as_plain_user: bool = False, timeout: float = DEADLINE_S) -> tuple[int, str, str]:
    """``rram-hil ARGS`` in its own process: (exit status, stdout, stderr)."""
    prefix = DROP_ROOT_POWERS if as_plain_user and os.geteuid() == 0 else []
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    env.pop("RRAM_HIL_DB", None)
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "hil.cli", *args],
        capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """``rram-hil ARGS`` in this process (typer's runner), from ``cwd``: (status, output, "");
    an exception that escaped the command is a failure here, whatever it printed."""
    before = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(before)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res.exit_code, res.output, ""


def one_line(code: int, out: str, err: str, starts: str = "error: db: ") -> str:
    """The single error line of a command that failed (status != 0, nothing else printed)."""
    assert code != 0, (out, err)
    assert "Traceback" not in out + err, err
    lines = (out + err).strip().splitlines()
    assert len(lines) == 1, out + err
    assert lines[0].startswith(starts), lines[0]
    return lines[0]


def state(path: Path) -> dict[str, Any]:
    """What must not change: the bytes (journal mode included: header bytes 18-19 are 2 in WAL
    mode), the modification time, and which sidecar files there are."""
    data = path.read_bytes()
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "mtime_ns": path.stat().st_mtime_ns,
        "journal": tuple(data[18:20]),
        "files": sorted(p.name for p in path.parent.iterdir()),
    }


def good_db(folder: Path, name: str = "good.sqlite") -> Path:
    """An rram-hil database with one completed iv-sweep run (run 1)."""
    folder.mkdir(parents=True, exist_ok=True)
    code, _, err = rram("run", "iv-sweep", "--no-plot", "--db", name, cwd=folder)
    assert code == 0, err
    return folder / name


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return good_db(tmp_path_factory.mktemp("template"))


def _random(path: Path, good: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def _truncated(path: Path, good: Path) -> None:
    path.write_bytes(good.read_bytes()[:20_000])


def _corrupt(path: Path, good: Path) -> None:
    data = bytearray(good.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # the schema's b-tree page, after the 100-byte header
    path.write_bytes(bytes(data))


def _foreign(path: Path, good: Path) -> None:
    con = sqlite3.connect(path)  # another program's database: its own tables, rollback journal
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("INSERT INTO notes (body) VALUES ('not ours')")
    con.commit()
    con.close()


DAMAGE = {"random-bytes": _random, "truncated": _truncated, "corrupt": _corrupt, "foreign": _foreign}
SAID = {
    "random-bytes": "is not an SQLite database",
    "truncated": "is damaged (database disk image is malformed)",
    "corrupt": "is damaged (database disk image is malformed)",
    "foreign": "is not an rram-hil database",
}
COMMANDS = [
    ["runs"], ["show", "1"], ["export", "1"], ["run", "iv-sweep", "--no-plot"], ["resume", "1", "--no-plot"],
    ["db", "info"], ["db", "upgrade"],
]  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_or_foreign_file_is_refused_unchanged(damage: str, template: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.sqlite"
    DAMAGE[damage](path, template)
    before = state(path)
    for command in COMMANDS:
        line = one_line(*cli(*command, "--db", "bad.sqlite", cwd=tmp_path))
        assert line.startswith("error: db: 'bad.sqlite' ") and SAID[damage] in line, (command, line)
        assert state(path) == before, command
    if damage == "foreign":
        con = sqlite3.connect(path)
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert [r[0] for r in con.execute("SELECT name FROM sqlite_master")] == ["notes"]
        con.close()


def test_a_read_only_file_is_read_and_never_written(template: Path, tmp_path: Path) -> None:
    path = tmp_path / "ro.sqlite"
    shutil.copyfile(template, path)
    path.chmod(0o444)
    code, out, err = rram("runs", "--json", "--db", "ro.sqlite", cwd=tmp_path, as_plain_user=True)
    assert code == 0 and '"iv-sweep"' in out, err
    code, out, err = rram("export", "1", "--db", "ro.sqlite", cwd=tmp_path, as_plain_user=True)
    assert code == 0 and len(out.splitlines()) == 813, err
    before = state(path)
    line = one_line(*rram("run", "iv-sweep", "--no-plot", "--db", "ro.sqlite", cwd=tmp_path, as_plain_user=True))
    assert line == "error: db: 'ro.sqlite' is read-only (attempt to write a readonly database)"
    assert {k: v for k, v in state(path).items() if k != "files"} == {
        k: v for k, v in before.items() if k != "files"
    }
    path.chmod(0o644)
    with Store(path) as store:
        assert list(store.runs_df()["id"]) == [1]  # the refused run left no row


def test_a_read_only_folder_is_one_line_and_nothing_is_written(template: Path, tmp_path: Path) -> None:
    folder = tmp_path / "locked-folder"
    folder.mkdir()
    path = folder / "db.sqlite"
    shutil.copyfile(template, path)
    before = state(path)
    folder.chmod(0o555)
    try:
        for command in (["runs"], ["run", "iv-sweep", "--no-plot"], ["db", "info"]):
            line = one_line(*rram(*command, "--db", "db.sqlite", cwd=folder, as_plain_user=True))
            assert line.startswith("error: db: 'db.sqlite' cannot be used: its folder is not writable"), line
        line = one_line(*rram("run", "iv-sweep", "--no-plot", "--db", "new.sqlite", cwd=folder, as_plain_user=True))
        assert "new.sqlite" in line
    finally:
        folder.chmod(0o755)
    assert state(path) == before and not (folder / "new.sqlite").exists()


HOLDER = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
if sys.argv[2] == "exclusive":
    con.execute("PRAGMA locking_mode=EXCLUSIVE")  # not even a reader gets in
print("ready", flush=True)
sys.stdin.readline()
con.execute("BEGIN IMMEDIATE")
con.execute("UPDATE runs SET seed = seed WHERE id = 1")  # holds the write lock (and, exclusive, all)
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
print("released", flush=True)
"""


class Holder:
    """Another program that holds a lock on an SQLite file (plain sqlite3 in its own process)."""

    def __init__(self, path: Path, mode: str = "write") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(path), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.said() == "ready"

    def said(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def step(self, expect: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        assert self.said() == expect

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=DEADLINE_S)


def test_a_lock_held_by_another_program_is_one_line_and_nothing_is_written(template: Path, tmp_path: Path) -> None:
    path = tmp_path / "busy.sqlite"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}?timeout=0.3"  # the busy timeout, in seconds (default 10)
    holder = Holder(path)
    try:
        holder.step("locked")
        code, out, err = rram("runs", "--json", "--db", url, cwd=tmp_path)
        assert code == 0 and '"iv-sweep"' in out, err  # WAL: a reader is never blocked by a writer
        line = one_line(*rram("run", "iv-sweep", "--no-plot", "--db", url, cwd=tmp_path))
        assert line.startswith(f"error: db: '{url}' is locked by another program (database is locked)"), line
        holder.step("released")
    finally:
        holder.close()
    with Store(path) as store:
        assert list(store.runs_df()["id"]) == [1]

    holder = Holder(path, "exclusive")
    try:
        holder.step("locked")
        line = one_line(*rram("runs", "--db", url, cwd=tmp_path))
        assert "is locked by another program" in line
    finally:
        holder.close()


def _lines(stream: Any, into: queue.Queue[str]) -> None:
    for line in stream:
        into.put(line)


def test_a_lock_taken_mid_run_ends_the_run_failed_with_the_cause(tmp_path: Path) -> None:
    path = good_db(tmp_path, "runs.sqlite")
    url = f"sqlite:///{path}?timeout=0.5"
    holder = Holder(path)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MPLBACKEND": "Agg"}
    run = subprocess.Popen(
        [sys.executable, "-m", "hil.cli", "run", "potentiation-cycling", "--set", "cycles=100000", "--no-plot",
         "--db", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )  # fmt: skip
    errors: queue.Queue[str] = queue.Queue()
    threading.Thread(target=_lines, args=(run.stderr, errors), daemon=True).start()
    try:
        assert helpers.wait_for_readings(path, 812 + 200, run) >= 812 + 200
        holder.step("locked")  # from now on every write of the run waits in vain
        deadline = time.monotonic() + DEADLINE_S
        said = ""
        while "still trying to record the end of run 2" not in said and time.monotonic() < deadline:
            try:
                said = errors.get(timeout=1)
            except queue.Empty:
                assert run.poll() is None, "the run ended while the database was locked"
        assert "is locked by another program (database is locked)" in said, said
        assert run.poll() is None  # it waits to record its end, it did not give up the run silently
        holder.step("released")
        code = run.wait(timeout=DEADLINE_S)
    finally:
        holder.close()
        if run.poll() is None:
            run.kill()
    assert code == 1
    with Store(path) as store:
        info = store.run(2)
        assert info.status == "failed"
        assert info.error is not None and "database is locked" in info.error and "\n" not in info.error
        assert "error" in set(store.events_df(2)["kind"])
        assert store.integrity_ok()


def test_a_directory_an_empty_or_unknown_url_and_a_missing_driver(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    for command in (["run", "iv-sweep", "--no-plot"], ["runs"], ["db", "info"]):
        line = one_line(*cli(*command, "--db", "folder", cwd=tmp_path))
        assert line == "error: db: 'folder' is a directory, not a database file"
        line = one_line(*cli(*command, "--db", "", cwd=tmp_path))
        assert line.startswith("error: db: empty; give a file path, sqlite:///PATH or postgresql+psycopg://")
        line = one_line(*cli(*command, "--db", "foo://", cwd=tmp_path))
        assert line.startswith("error: db: 'foo://' is no kind of database rram-hil knows ('foo')")
    assert importlib.util.find_spec("pg8000") is None  # the driver this case needs is not installed
    line = one_line(*rram("runs", "--db", "postgresql+pg8000://lab:s3cret@db.example/lab", cwd=tmp_path))
    assert line.startswith(
        "error: db: 'postgresql+pg8000://lab:***@db.example/lab' needs the Python driver 'pg8000', which is not installed"
    )
    assert "s3cret" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing created anywhere


def test_a_server_that_is_not_there_or_a_missing_server_database(
    postgres_server: helpers.PostgresServer, tmp_path: Path
) -> None:
    nobody = f"postgresql+psycopg://lab:s3cret@127.0.0.1:{helpers.free_port()}/lab"
    line = one_line(*rram("runs", "--db", nobody, cwd=tmp_path))
    assert line.startswith("error: db: cannot connect to 'postgresql+psycopg://lab:***@127.0.0.1:")
    assert "s3cret" not in line
    missing = postgres_server.url("no_such_db", password="s3cret")
    line = one_line(*rram("run", "iv-sweep", "--no-plot", "--db", missing, cwd=tmp_path))
    assert 'database "no_such_db" does not exist' in line and "createdb" in line and "s3cret" not in line
    assert list(tmp_path.iterdir()) == []


def test_a_run_the_database_refuses_at_its_start_leaves_the_outputs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    from hil.backends import build_backend
    from hil.engine import RunEngine

    made: list[helpers.RecordingBackend] = []

    def factory(station: Any, seed: int | None = None) -> helpers.RecordingBackend:
        made.append(helpers.RecordingBackend(build_backend(station, seed)))
        return made[-1]

    def locked(*args: Any, **kwargs: Any) -> int:
        raise OperationalError("INSERT INTO runs ...", {}, sqlite3.OperationalError("database is locked"))

    with Store(tmp_path / "runs.sqlite") as store:
        monkeypatch.setattr(store, "create_run", locked)
        with pytest.raises(OperationalError, match="database is locked"):
            RunEngine(store, backend_factory=factory).run("iv-sweep", helpers.twin_station(), plot=False)
        assert len(made) == 1 and made[0].safe_calls == 1  # safe state (then closed) though no run row exists
        assert store.runs_df().empty
