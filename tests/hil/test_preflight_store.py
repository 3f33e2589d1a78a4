"""``Protocol.preflight_store``: what a run's parameters refer to in its database is checked before
the run row exists (the engine's ``run`` and ``resume``; ``prepare`` when handed the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.engine import RunEngine, prepare
from hil.errors import ConfigError
from hil.protocol import Params, Protocol, RunContext
from hil.store import Store
from tests.helpers import twin_station, write_tiny_mnist


class RefParams(Params):
    ref: int = 0


class Referring(Protocol):
    """Refers to an earlier run of its database (``ref``); 0 refers to none."""

    name = "referring"
    title = "test protocol"
    Params = RefParams
    supports_resume = True

    def preflight_store(self, params: RefParams, store: Store) -> None:
        if params.ref:
            try:
                store.run(params.ref)
            except ConfigError:
                raise ConfigError(f"ref: run {params.ref} is not in this database") from None

    def execute(self, ctx: RunContext, params: Any) -> None:
        raise KeyboardInterrupt("stopped")


def test_run_checks_the_store_before_the_run_row(tmp_path: Path) -> None:
    store = Store(tmp_path / "t.sqlite")
    engine = RunEngine(store)
    with pytest.raises(ConfigError, match="^ref: run 7 is not in this database$"):
        engine.run(Referring(), twin_station(), {"ref": 7}, plot=False)
    assert store.runs_df().empty
    prepare(Referring(), twin_station(), {"ref": 7})  # without a store nothing is looked up
    with pytest.raises(ConfigError, match="run 7"):
        prepare(Referring(), twin_station(), {"ref": 7}, store)
    first = engine.run(Referring(), twin_station(), {}, plot=False)
    assert first.status == "interrupted"
    second = engine.run(Referring(), twin_station(), {"ref": first.run_id}, plot=False)
    assert second.status == "interrupted" and len(store.runs_df()) == 2


def test_resume_checks_the_store_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "t.sqlite")
    engine = RunEngine(store)
    first = engine.run(Referring(), twin_station(), {}, plot=False)
    second = engine.run(Referring(), twin_station(), {"ref": first.run_id}, plot=False)
    monkeypatch.setattr("hil.engine.get_protocol", lambda name: Referring())
    with store.engine.begin() as conn:  # the referred run disappears before the resume
        conn.exec_driver_sql("DELETE FROM runs WHERE id = ?", (first.run_id,))
    with pytest.raises(ConfigError, match=f"ref: run {first.run_id} is not in this database"):
        engine.resume(second.run_id, plot=False)
    assert store.run(second.run_id).status == "interrupted"  # not reopened


def test_cli_refuses_a_missing_iv_run_in_one_line_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    data = write_tiny_mnist(tmp_path / "mnist", 60, 20)
    store = Store(tmp_path / "lab.sqlite")
    RunEngine(store).run("conductance-map", twin_station(), {}, plot=False)
    store.close()
    res = CliRunner().invoke(
        app,
        ["run", "hybrid-training", "--db", "lab.sqlite", "--no-plot", "--set", "synapse=fp",
         "--set", "activation=iv-run:999", "--set", f"data_dir={data}"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert text == (
        "error: activation: 'iv-run:999' names run 999, which is not in this database (give an I-V run "
        "of the same database: dc-iv, iv-sweep or a sequence ramp)"
    )
    assert list(Store(tmp_path / "lab.sqlite").runs_df()["id"]) == [1]
    assert not (tmp_path / "rram-hil-plots").exists()


def test_cli_refusing_a_missing_iv_run_creates_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RRAM_HIL_DB", raising=False)
    data = write_tiny_mnist(tmp_path / "mnist", 60, 20)
    res = CliRunner().invoke(
        app,
        ["run", "hybrid-training", "--db", "new.sqlite", "--no-plot", "--set", "synapse=fp",
         "--set", "activation=iv-run:999", "--set", f"data_dir={data}"],
        catch_exceptions=False,
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "error: activation: 'iv-run:999' names run 999, which is not in this database" in " ".join(
        res.output.split()
    )
    assert not (tmp_path / "new.sqlite").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "mnist"]
