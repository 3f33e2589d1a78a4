"""``rram-hil db info`` and ``rram-hil db upgrade``, and how every other command meets an old or a
newer database: one line, exit status 2, nothing changed."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.store import HEAD, Store

runner = CliRunner()
FIXTURE = Path(__file__).parents[1] / "fixtures" / "rram-hil-0.1.0.sqlite"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    return tmp_path


def cli(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_line_error(res, code: int = 2) -> str:
    assert res.exit_code == code, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_info_and_upgrade_of_a_database_of_0_1_0(workdir: Path) -> None:
    shutil.copyfile(FIXTURE, workdir / "old.sqlite")
    res = cli("db", "info", "--db", "old.sqlite")
    assert res.exit_code == 0, res.output
    assert res.output.splitlines() == [
        "database: old.sqlite",
        f"schema version: none (rram-hil 0.1.0); head {HEAD}: older: run `rram-hil db upgrade --db old.sqlite`",
        "runs: 3",
        "readings: 872",
        "size: 180.2 kB (180,224 bytes)",
    ]
    for command in (["runs"], ["show", "1"], ["export", "1"], ["resume", "3", "--no-plot"]):
        line = one_line_error(cli(*command, "--db", "old.sqlite"))
        assert line == (
            f"error: db: 'old.sqlite' was written by rram-hil 0.1.0 (no schema version; this rram-hil "
            f"needs {HEAD}): run `rram-hil db upgrade --db old.sqlite`"
        )
    res = cli("db", "upgrade", "--db", "old.sqlite")
    assert res.exit_code == 0, res.output
    assert res.output.strip() == (
        f"old.sqlite: upgraded from schema version none (rram-hil 0.1.0) to {HEAD} (3 runs, 872 readings kept)"
    )
    res = cli("db", "upgrade", "--db", "old.sqlite")
    assert res.exit_code == 0 and res.output.strip() == (
        f"old.sqlite: already at schema version {HEAD} (head); nothing to do"
    )
    res = cli("db", "info", "--db", "old.sqlite")
    assert f"schema version: {HEAD}; head {HEAD}: up to date" in res.output
    assert cli("runs", "--db", "old.sqlite").exit_code == 0
    res = cli("resume", "3", "--db", "old.sqlite", "--no-plot")  # the interrupted run of 0.1.0 resumes
    assert res.exit_code == 0 and "run 3: completed" in res.output


def test_db_commands_on_a_database_that_is_not_there(workdir: Path) -> None:
    for sub in ("info", "upgrade"):
        assert (
            one_line_error(cli("db", sub, "--db", "missing.sqlite"))
            == "error: db: 'missing.sqlite' does not exist"
        )
    assert not (workdir / "missing.sqlite").exists()
    (workdir / "folder").mkdir()
    line = one_line_error(cli("db", "info", "--db", "folder"))
    assert line == "error: db: 'folder' is a directory, not a database file"


def test_a_newer_database_is_refused_by_every_command(workdir: Path) -> None:
    Store(workdir / "new.sqlite").close()
    con = sqlite3.connect(workdir / "new.sqlite")
    con.execute("UPDATE alembic_version SET version_num = '0099'")
    con.commit()
    con.close()
    refusal = (
        f"error: db: 'new.sqlite' has schema version 0099, newer than this rram-hil knows (its newest is "
        f"{HEAD}): upgrade rram-hil to open it"
    )
    assert one_line_error(cli("runs", "--db", "new.sqlite")) == refusal
    assert one_line_error(cli("db", "upgrade", "--db", "new.sqlite")) == refusal
    res = cli("db", "info", "--db", "new.sqlite")
    assert res.exit_code == 0
    assert (
        f"schema version: 0099; head {HEAD}: newer than this rram-hil: upgrade rram-hil to use it"
        in res.output
    )


def test_a_blocked_upgrade_is_one_line_and_changes_nothing(workdir: Path) -> None:
    shutil.copyfile(FIXTURE, workdir / "old.sqlite")
    con = sqlite3.connect(workdir / "old.sqlite")
    con.execute(
        "INSERT INTO pulses SELECT NULL, run_id, seq, purpose, array, row, col, amplitude_V, width_s, count, t_s, cycle, pulse, step FROM pulses WHERE id = 1"
    )
    con.commit()
    con.close()
    line = one_line_error(cli("db", "upgrade", "--db", "old.sqlite"))
    assert line.startswith(
        "error: db upgrade: 1 (run_id, seq) pairs of 'pulses' occur more than once (run 1 has seq "
    )
    assert line.endswith("cannot be made unique; nothing was changed")
    assert "schema version: none" in cli("db", "info", "--db", "old.sqlite").output


def test_a_new_database_is_made_at_head(workdir: Path) -> None:
    res = cli("run", "iv-sweep", "--db", "fresh.sqlite", "--no-plot")
    assert res.exit_code == 0, res.output
    res = cli("db", "info", "--db", "fresh.sqlite")
    assert f"schema version: {HEAD}; head {HEAD}: up to date" in res.output
    assert "runs: 1" in res.output


@pytest.mark.parametrize(
    "args",
    [["runs"], ["show", "1"], ["export", "1"], ["plot", "1"], ["resume", "1"], ["analyze", "1"], ["report", "1"]],
)
def test_commands_that_read_never_create_a_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    res = CliRunner().invoke(app, [*args, "--db", "mistyped.sqlite"])
    assert res.exit_code == 2, res.output
    assert " ".join(res.output.split()) == (
        "error: db: 'mistyped.sqlite' does not exist (this command reads a database and creates none; check --db)"
    )
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "folder").mkdir()
    res = CliRunner().invoke(app, [*args, "--db", "folder"])
    assert res.exit_code == 2 and " ".join(res.output.split()) == "error: db: 'folder' is a directory, not a database file"
