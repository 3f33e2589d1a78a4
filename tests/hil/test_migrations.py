"""Schema versions and migrations (Alembic): a database of rram-hil 0.1.0 upgraded with every row
kept, old and newer versions refused in one line, new databases created once by many processes."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine
from sqlalchemy.exc import IntegrityError

from hil.store import (
    HEAD,
    PULSE_COLUMNS,
    READING_COLUMNS,
    MigrationBlocked,
    SchemaError,
    SchemaOutdated,
    SchemaTooNew,
    Store,
    database_info,
    upgrade_database,
)
from hil.store.schema import MIGRATIONS, REVISIONS, alembic_config, locked

FIXTURE = Path(__file__).parent / "fixtures" / "rram-hil-0.1.0.sqlite"
TABLES = (
    "runs", "readings", "pulses", "events", "checkpoints", "artifacts", "epochs", "epoch_arrays",
    "snapshots", "tracked_synapses", "weight_errors",
)  # fmt: skip
REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 120


def legacy(tmp_path: Path, name: str = "legacy.sqlite") -> Path:
    """A copy of the database written by rram-hil 0.1.0 (the fixture itself is never written)."""
    path = tmp_path / name
    shutil.copyfile(FIXTURE, path)
    return path


#: readings and pulses, narrow tables up to 0002 and views from 0003 on, by their documented columns
#: (the narrow tables' surrogate ``id`` went with them), in (run_id, seq) order
LOGGED = {"readings": READING_COLUMNS, "pulses": PULSE_COLUMNS}


def rows(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store, in primary-key order (readings and pulses: every
    value of every documented column, in seq order)."""
    con = sqlite3.connect(path)
    try:
        out = {}
        for t in TABLES:
            if t in LOGGED:
                cols = ", ".join(f'"{c}"' for c in LOGGED[t])
                out[t] = con.execute(f"SELECT {cols} FROM {t} ORDER BY run_id, seq").fetchall()
            else:
                out[t] = con.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
        return out
    finally:
        con.close()


def schema(path: Path, with_version: bool = False) -> set[tuple[str, str, str | None]]:
    """The database's tables and indexes as SQLite stores their ``CREATE`` statements."""
    con = sqlite3.connect(path)
    try:
        found = set(con.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))
    finally:
        con.close()
    return found if with_version else {r for r in found if not r[1].startswith("alembic_version")}


def version(path: Path) -> list[str]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT version_num FROM alembic_version")]
    finally:
        con.close()


def migrate_from_nothing(path: Path, to: str) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with locked(engine) as conn:
        command.upgrade(alembic_config(conn), to)
    engine.dispose()


# ---------------------------------------------------------------------- the versions themselves
def test_revisions_are_alembics_history() -> None:
    script = ScriptDirectory(str(MIGRATIONS))
    history = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(history) == REVISIONS and script.get_current_head() == HEAD


def test_revision_1_is_the_schema_of_0_1_0_exactly(tmp_path: Path) -> None:
    migrate_from_nothing(tmp_path / "r1.sqlite", "0001")
    assert schema(tmp_path / "r1.sqlite") == schema(FIXTURE)
    assert version(tmp_path / "r1.sqlite") == ["0001"]


def test_a_new_database_is_created_at_head_as_the_migrations_make_it(tmp_path: Path) -> None:
    Store(tmp_path / "new.sqlite").close()
    migrate_from_nothing(tmp_path / "migrated.sqlite", "head")
    assert version(tmp_path / "new.sqlite") == [HEAD]
    assert schema(tmp_path / "new.sqlite", with_version=True) == schema(
        tmp_path / "migrated.sqlite", with_version=True
    )


def test_run_seq_is_unique_at_head(store: Store) -> None:
    run_id = store.create_run("potentiation-cycling", {}, {"name": "t"}, "twin")
    one = {"run_id": run_id, "seq": 0, "array": "A", "row": 0, "col": 0, "voltage_V": 0.5, "current_A": 1e-6}
    store.add_readings({**one, "t_s": 0.0})
    with pytest.raises(IntegrityError):
        store.add_readings({**one, "t_s": 1.0})
    store.conn.rollback()
    pulse = {"run_id": run_id, "seq": 0, "array": "A", "row": 0, "col": 0, "amplitude_V": 2.0}
    store.add_pulses({**pulse, "width_s": 1e-4, "count": 1, "t_s": 0.0})
    with pytest.raises(IntegrityError):
        store.add_pulses({**pulse, "width_s": 1e-4, "count": 1, "t_s": 1.0})
    store.conn.rollback()
    assert store.count_readings(run_id) == 1 and store.count_pulses(run_id) == 1


# ---------------------------------------------------------------------- upgrading 0.1.0
def test_a_database_of_0_1_0_is_refused_until_upgraded_then_keeps_every_row(tmp_path: Path) -> None:
    path = legacy(tmp_path)
    before = rows(path)
    assert len(before["runs"]) == 3 and len(before["readings"]) == 872 and len(before["artifacts"]) == 1
    with pytest.raises(SchemaOutdated) as refused:
        Store(path)
    message = str(refused.value)
    assert "\n" not in message and "no schema version" in message
    assert f"rram-hil db upgrade --db {path}" in message
    assert rows(path) == before and "alembic_version" not in {r[1] for r in schema(path, True)}

    done = upgrade_database(path)
    assert (done.before, done.after, done.changed) == (None, HEAD, True)
    assert version(path) == [HEAD]
    assert rows(path) == before  # every row of every table, every value
    with Store(path) as store:
        assert list(store.runs_df()["readings"]) == [40, 812, 20]
        assert store.load_checkpoint(3) is not None
        assert store.run(3).status == "interrupted"
    assert not upgrade_database(path).changed  # again: nothing to do


def test_an_older_version_is_refused_and_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite"
    migrate_from_nothing(path, "0001")
    with pytest.raises(
        SchemaOutdated, match=f"schema version 0001, this rram-hil needs {HEAD}: run `rram-hil db upgrade"
    ):
        Store(path)
    assert upgrade_database(path).before == "0001"
    Store(path).close()


def test_doubled_run_seq_blocks_the_upgrade_and_changes_nothing(tmp_path: Path) -> None:
    path = legacy(tmp_path)
    con = sqlite3.connect(path)
    con.execute(
        "INSERT INTO readings (run_id, seq, kind, array, row, col, voltage_V, current_A, t_s) "
        "SELECT run_id, seq, kind, array, row, col, voltage_V, current_A, t_s FROM readings WHERE run_id = 3 AND seq = 5"
    )
    con.commit()
    con.close()
    before, shape = rows(path), schema(path, True)
    with pytest.raises(MigrationBlocked) as blocked:
        upgrade_database(path)
    message = str(blocked.value)
    assert "\n" not in message
    assert "1 (run_id, seq) pairs of 'readings' occur more than once (run 3 has seq 5 2 times" in message
    assert message.endswith("nothing was changed")
    assert rows(path) == before and schema(path, True) == shape  # no version table, no index changed


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite"
    Store(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE alembic_version SET version_num = '0099'")
    con.commit()
    con.close()
    with pytest.raises(SchemaTooNew) as refused:
        Store(path)
    assert str(refused.value) == (
        f"db: '{path}' has schema version 0099, newer than this rram-hil knows (its newest is {HEAD}): "
        "upgrade rram-hil to open it"
    )
    with pytest.raises(SchemaTooNew):
        upgrade_database(path)
    assert version(path) == ["0099"]
    assert database_info(path).version == "0099"


def test_a_foreign_sqlite_file_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.commit()
    con.close()
    shape = schema(path, True)
    with pytest.raises(SchemaError, match="is not an rram-hil database"):
        Store(path)
    assert schema(path, True) == shape


# ---------------------------------------------------------------------- many processes at once
OPENER = """
import sys
from hil.store import Store
print("ready", flush=True)
sys.stdin.readline()  # the barrier: every process is started before any opens the database
with Store(sys.argv[1]) as store:
    print(store.schema.version, len(store.runs_df()), flush=True)
"""

UPGRADER = """
import sys
from hil.store import upgrade_database
print("ready", flush=True)
sys.stdin.readline()
done = upgrade_database(sys.argv[1])
print(done.before, done.after, done.changed, flush=True)
"""


def released_together(code: str, arg: Path, n: int = 4) -> list[tuple[int, str, str]]:
    """Start ``n`` processes running ``code``, wait until each says it is ready, release them
    all at once, and return each one's exit status, stdout and stderr."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(arg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for _ in range(n)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return [(p.wait(timeout=DEADLINE_S), *p.communicate(timeout=DEADLINE_S)) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_four_processes_create_one_new_database_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    results = released_together(OPENER, path)
    for code, out, err in results:
        assert code == 0, err
        assert out.split() == [HEAD, "0"]
    assert version(path) == [HEAD]
    assert schema(path, True) == schema(Path(_fresh(tmp_path)), True)


def test_four_processes_upgrade_one_old_database_at_once(tmp_path: Path) -> None:
    path = legacy(tmp_path)
    before = rows(path)
    results = released_together(UPGRADER, path)
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    outcomes = sorted(out.split()[0] for _, out, _ in results)
    assert outcomes == [HEAD, HEAD, HEAD, "None"]  # one migrated it, three found it done
    assert rows(path) == before and version(path) == [HEAD]


def _fresh(tmp_path: Path) -> str:
    path = tmp_path / "fresh-reference.sqlite"
    Store(path).close()
    return str(path)


def test_readings_df_after_the_upgrade_is_what_0_1_0_read(tmp_path: Path) -> None:
    """readings_df/pulses_df of a migrated database equal the old narrow tables read the way
    rram-hil 0.1.0 read them (same columns, dtypes, values, order), and their counts."""
    import pandas as pd

    path = legacy(tmp_path)
    url = f"sqlite:///{path}"
    old = {
        (table, run_id): pd.read_sql_query(
            f"SELECT {', '.join(chr(34) + c + chr(34) for c in cols)} FROM {table} WHERE run_id = {run_id} "
            "ORDER BY seq",
            url,
        )
        for table, cols in LOGGED.items()
        for run_id in (1, 2, 3)
    }
    upgrade_database(path)
    with Store(path) as store:
        for run_id in (1, 2, 3):
            pd.testing.assert_frame_equal(store.readings_df(run_id), old["readings", run_id])
            pd.testing.assert_frame_equal(store.pulses_df(run_id), old["pulses", run_id])
            assert store.count_readings(run_id) == len(old["readings", run_id])
            assert store.max_seq(run_id) == old["readings", run_id]["seq"].max()
    assert database_info(path).readings == 872


def test_a_downgrade_to_0002_gives_the_narrow_tables_back(tmp_path: Path) -> None:
    path = legacy(tmp_path)
    before = rows(path)
    upgrade_database(path)
    engine = create_engine(f"sqlite:///{path}")
    with locked(engine) as conn:
        command.downgrade(alembic_config(conn), "0002")
    engine.dispose()
    assert version(path) == ["0002"] and rows(path) == before
    types = {name: kind for kind, name, _ in schema(path)}
    assert types["readings"] == types["pulses"] == "table"
    assert "reading_blocks" not in types and "pulse_blocks" not in types
    upgrade_database(path)
    assert rows(path) == before
