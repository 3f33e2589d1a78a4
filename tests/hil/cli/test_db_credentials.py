"""A password in a database URL is never printed, logged or stored: what is shown (``db info``,
errors, a lock's warning) and what is stored with a run (its station snapshot, parameters,
events and error) carry ``***`` in its place."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hil.cli import app
from hil.store import Store, database_info
from hil.store.urls import mask_text, shown
from tests import helpers

SECRET = "pa55-w0rd"


def test_masking() -> None:
    assert shown(f"postgresql+psycopg://lab:{SECRET}@db.lab:5432/runs") == "postgresql+psycopg://lab:***@db.lab:5432/runs"
    assert shown("runs.sqlite") == "runs.sqlite"
    text = f"could not reach postgresql://lab:{SECRET}@db.lab/runs (and 'sqlite:///x.sqlite')"
    assert mask_text(text) == "could not reach postgresql://lab:***@db.lab/runs (and 'sqlite:///x.sqlite')"
    assert mask_text("a time 12:30@noon, no URL") == "a time 12:30@noon, no URL"


def test_nothing_stored_with_a_run_holds_the_password(
    postgres_server: helpers.PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    name = postgres_server.create_database("creds").rsplit("/", 1)[1]
    url = postgres_server.url(name, password=SECRET)  # trust authentication: the password is not checked
    with Store(url) as store:
        assert SECRET not in store.url and SECRET not in repr(vars(store))
        run_id = store.create_run(
            "demo",
            {"sink": url},
            {"name": "st", "notes": f"results also go to {url}"},
            "twin",
            {"db": url},
        )
        store.add_event(run_id, "error", {"traceback": f"OperationalError: cannot reach {url}"})
        store.finish_run(run_id, "failed", f"OperationalError: cannot reach {url}\n[SQL: SELECT 1]")
        info = store.run(run_id)
        assert info.error == f"OperationalError: cannot reach {shown(url)}"
    engine = sa.create_engine(url)
    with engine.connect() as conn:  # every stored byte of the run, as text
        stored = " ".join(
            str(row)
            for table in ("runs", "events")
            for row in conn.exec_driver_sql(f"SELECT * FROM {table}").all()  # noqa: S608
        )
    engine.dispose()
    assert SECRET not in stored and stored.count(":***@") == 5
    with caplog.at_level(logging.DEBUG):
        found = database_info(url)
    assert SECRET not in found.db and ":***@" in found.db
    assert all(SECRET not in r.getMessage() for r in caplog.records)


def test_commands_show_the_url_masked(postgres_server: helpers.PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    name = postgres_server.create_database("shown").rsplit("/", 1)[1]
    url = postgres_server.url(name, password=SECRET)
    runner = CliRunner()
    for args in (["run", "iv-sweep", "--no-plot"], ["db", "info"], ["show", "1"], ["show", "9"], ["runs"]):
        res = runner.invoke(app, [*args, "--db", url])
        assert SECRET not in res.output, args
    res = runner.invoke(app, ["db", "info", "--db", url])
    assert res.exit_code == 0 and res.output.splitlines()[0] == f"database: {shown(url)}"
    res = runner.invoke(app, ["show", "9", "--db", url])
    assert res.exit_code == 2 and res.output.strip() == f"error: run: no run with id 9 in {shown(url)}"
