"""The Choi et al. 2021 sweep: case names, the table, and a tiny sweep on a local Dask cluster."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hil.cli import app
from hil.errors import ConfigError
from hil.store import Store
from hil.store.training import epochs_df
from protocols.training.choi2021 import expected_cost, paper_cases, select_cases
from tests.helpers import write_tiny_mnist

MAIN = ["fp", "single_s50", "hybrid_s50_k1", "hybrid_s50_k10", "hybrid_s50_k100", "hybrid_g400_k10",
        "hybrid_g400_k100", "single_s10", "hybrid_s10_k10"]  # fmt: skip


def test_every_case_of_the_paper_is_named_as_the_issue_says() -> None:
    names = [c.name for c in paper_cases()]
    assert names[: len(MAIN)] == MAIN
    assert {"c2c_0", "c2c_0.34", "c2c_1", "c2c_2", "d2d_0", "d2d_1", "d2d_2"} <= set(names)
    by = {c.name: c for c in paper_cases()}
    assert by["hybrid_g400_k100"].params == {"synapse": "hybrid", "states": 50, "g_states": 400, "k": 100}
    assert by["single_s10"].paper_test_accuracy == 9.8 and by["fp"].paper_test_accuracy == 97.92
    assert by["c2c_1.5"].params["c2c_sigma_over_mu"] == 1.5 and by["d2d_0.5"].params["d2d_sigma"] == 0.5
    assert by["hybrid_s10_k10"].params.get("fine_counts", "same") == "same"  # the default mapping
    for name in ("hybrid_s50_k10", "hybrid_s10_k10"):  # the previous defaults, as named cases
        old = by[f"{name}_fine_round"]
        assert old.params == {**by[name].params, "fine_pulse_mapping": "round"}
        assert old.paper_test_accuracy == by[name].paper_test_accuracy
    assert by["hybrid_s10_k10_rescaled"].params["fine_counts"] == "rescaled"
    for name in ("single_s10_stochastic", "hybrid_s10_k10_stochastic"):
        assert by[name].params["pulse_mapping"] == "stochastic" and by[name].params["states"] == 10
    assert by["hybrid_s10_k10_stochastic"].paper_test_accuracy == by["hybrid_s10_k10"].paper_test_accuracy


def test_the_expected_cost_of_a_case_orders_the_paper_cases_as_their_runs_did() -> None:
    """The ordering the 3-epoch sweep of docs/choi2021/ measured: c2c 2 and the rescaled and
    stochastic cases programmed 3-7 x the pulses of the main case, floating point none."""
    by = {c.name: expected_cost(c.params) for c in paper_cases()}
    assert by["fp"] < by["single_s50"] <= by["hybrid_s50_k10"] < by["c2c_1"] < by["c2c_1.5"] < by["c2c_2"]
    assert by["hybrid_s50_k10_rescaled"] > by["hybrid_s50_k10"] < by["hybrid_s10_k10_stochastic"]
    assert expected_cost({"synapse": "hybrid", "epochs": 10}) == 2 * expected_cost(
        {"synapse": "hybrid", "epochs": 5}
    )


def test_unknown_case_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="unknown case.*hybrid_s50_k7"):
        select_cases("fp,hybrid_s50_k7")


def test_tiny_sweep_on_a_local_cluster(tmp_path: Path) -> None:
    data = write_tiny_mnist(tmp_path / "mnist", 60, 20)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "reproduce", "choi2021", "--epochs", "1", "--train-limit", "30", "--test-limit", "20", "--workers", "1",
        "--out", str(out), "--data-dir", str(data), "--cases", "fp,single_s10,c2c_0.34,hybrid_s50_k10,hybrid_s10_k10_stochastic",
        "--set", "hidden=4", "--set", "eval_batch=10",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "table.csv")
    assert list(table["case"]) == [
        "fp",
        "single_s10",
        "c2c_0.34",
        "hybrid_s50_k10",
        "hybrid_s10_k10_stochastic",
    ]
    for col in ("case", "paper_test_accuracy", "measured_test_accuracy", "epochs"):
        assert col in table.columns
    assert (table["epochs"] == 1).all() and table["measured_test_accuracy"].notna().all()
    # identical parameter sets run once: c2c_0.34 is the main hybrid case
    same = table.set_index("case").loc[["c2c_0.34", "hybrid_s50_k10"], "run_id"]
    assert same.nunique() == 1
    assert (table["status"] == "completed").all() and table["run_id"].nunique() == 4
    # the longest case starts first (one worker: run ids in start order)
    started = table.drop_duplicates("run_id").sort_values("run_id")["case"].tolist()
    assert started[0] == "hybrid_s10_k10_stochastic", table[["case", "run_id"]]
    md = (out / "table.md").read_text()
    assert "| hybrid_s50_k10 | 97.00 |" in md and "epochs=1" in md
    # each run's own training time (its epochs' wall_s), stated in the table and summed once
    assert not table["reused"].any() and "earlier invocations" not in md
    with Store(out / "choi2021.sqlite") as store:
        trained = {int(r): float(epochs_df(store, int(r))["wall_s"].sum()) for r in table["run_id"].unique()}
    assert (table["train_s"] > 0).all()
    assert table["train_s"].tolist() == pytest.approx([trained[int(r)] for r in table["run_id"]])
    assert f"Training time of the runs, summed: {sum(trained.values()):.0f} s" in md
    for fig in ("fig4abc.png", "fig4def.png", "fig5cde.png", "fig5f.png", "fig6abcd.png"):
        assert (out / fig).stat().st_size > 1000
    with Store(out / "choi2021.sqlite") as store:
        for run_id in table["run_id"].unique():
            assert store.run(int(run_id)).protocol == "hybrid-training"
            assert list(epochs_df(store, int(run_id))["epoch"]) == [0, 1]


def test_a_named_sweep_run_again_reuses_its_completed_cases(tmp_path: Path) -> None:
    data = write_tiny_mnist(tmp_path / "mnist", 40, 20)
    out = tmp_path / "out"
    args = ["reproduce", "choi2021", "--epochs", "1", "--train-limit", "20", "--test-limit", "20", "--workers", "1",
            "--out", str(out), "--data-dir", str(data), "--cases", "fp,single_s10", "--set", "hidden=4",
            "--set", "eval_batch=10", "--sweep", "lab-2026.a"]  # fmt: skip
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "sweep lab-2026.a:" in first.output and "--sweep lab-2026.a" in first.output
    runs_before = pd.read_csv(out / "table.csv")["run_id"].tolist()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    table = pd.read_csv(out / "table.csv")
    assert table["run_id"].tolist() == runs_before  # the same runs, reused
    assert table["reused"].all() and (table["train_s"] > 0).all()  # their time is still the runs' own
    assert "2 of its 2 runs were completed by earlier invocations" in (out / "table.md").read_text()
    with Store(out / "choi2021.sqlite") as store:
        assert len(store.runs_df()) == 2  # nothing run twice
    unnamed = CliRunner().invoke(app, args[:-2])
    assert unnamed.exit_code == 0, unnamed.output
    with Store(out / "choi2021.sqlite") as store:
        assert len(store.runs_df()) == 4  # a sweep without a name is a new one


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "../up"])
def test_a_bad_sweep_name_is_one_line_and_changes_nothing(tmp_path: Path, name: str) -> None:
    out = tmp_path / "o"
    result = CliRunner().invoke(app, ["reproduce", "choi2021", "--out", str(out), "--sweep", name])
    assert result.exit_code == 2
    assert "--sweep:" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_bad_sweep_input_changes_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reproduce", "choi2021", "--out", str(tmp_path / "o"), "--set", "lr=-1",
                                      "--data-dir", str(tmp_path)])  # fmt: skip
    assert result.exit_code == 2 and "lr" in result.output
    assert not (tmp_path / "o").exists()
