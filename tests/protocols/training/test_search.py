"""The search's score against the paper, and its space of open choices."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hil.errors import ConfigError
from hil.store import RunClaimed, Store
from protocols.training import HybridTrainingParams
from protocols.training.choi2021 import paper_cases
from protocols.training.search import (
    PAPER_TARGETS,
    PAPER_TRENDS,
    SEARCH_SPACE,
    Choice,
    Measured,
    claim_search,
    default_choices,
    free_space,
    run_search,
    score,
    scored_cases,
    start_search,
    stored_trials,
    trial_parameters,
)


def paper_like() -> tuple[dict[str, float], dict[str, float]]:
    """Accuracies that match every reported number and satisfy every trend."""
    test = {name: 90.0 for name in scored_cases()}
    test.update({c: v for c, col, v in PAPER_TARGETS if col == "test"})
    test.update({"hybrid_s50_k1": 95.0, "single_s50": 95.5, "c2c_0.34": 97.0, "c2c_1": 96.6, "c2c_2": 80.0,
                 "d2d_0": 97.0, "d2d_1": 96.5})  # fmt: skip
    train = {c: v for c, col, v in PAPER_TARGETS if col == "train"}
    return test, train


def test_the_papers_own_numbers_score_zero():
    test, train = paper_like()
    s = score(test, train)
    assert s.value == 0.0 and s.rms_pp == 0.0
    assert all(v == 0.0 for v in s.violations.values())


def test_a_distance_and_a_broken_trend_add_up_in_percentage_points():
    test, train = paper_like()
    test["fp"] -= 4.0  # 4 pp short of the FP number
    test["c2c_2"] = test["c2c_1"]  # variability beyond 1 no longer costs anything: 1 pp short
    s = score(test, train)
    assert s.deviations["fp:test"] == pytest.approx(-4.0)
    assert s.rms_pp == pytest.approx(math.sqrt(16.0 / len(PAPER_TARGETS)))
    assert s.violations["programming variability beyond 1 costs accuracy (Fig. 6B)"] == pytest.approx(1.0)
    assert s.value == pytest.approx(s.rms_pp + 1.0)


def test_every_scored_case_is_a_case_of_the_sweep_and_a_missing_one_is_named():
    names = {c.name for c in paper_cases()}
    assert set(scored_cases()) <= names
    assert {t.high for t in PAPER_TRENDS} | {t.low for t in PAPER_TRENDS} <= names
    test, train = paper_like()
    del test["single_s10"]
    with pytest.raises(KeyError, match="single_s10"):
        score(test, train)


def test_a_trial_sets_every_open_choice_and_joins_the_layers_weight_scales():
    def first(choice: Choice) -> object:
        return choice.choices[0] if choice.choices else choice.low

    params = trial_parameters(first)
    assert params["w_max"] == [0.125, 0.5]
    assert not any(k.startswith("w_max_") for k in params)
    unconditional = {c.name for c in SEARCH_SPACE if c.when is None and not c.name.startswith("w_max_")}
    assert unconditional <= set(params)
    # the first pulse mapping is round: the coincidence mapping's bit length is not asked
    assert params["pulse_mapping"] == "round" and "bit_length" not in params
    HybridTrainingParams.model_validate(params)


def test_the_coincidence_mapping_and_its_bit_length_are_searched():
    by_name = {c.name: c for c in SEARCH_SPACE}
    assert "coincidence" in by_name["pulse_mapping"].choices
    bits = by_name["bit_length"]
    assert bits.when == ("pulse_mapping", "coincidence") and bits.integer and bits.log
    assert bits.low < bits.high
    for end in (bits.low, bits.high):  # the whole range is valid for the protocol
        assert HybridTrainingParams.model_validate({"bit_length": int(end)}).bit_length == int(end)

    def coincident(choice: Choice) -> object:
        if choice.name == "pulse_mapping":
            return "coincidence"
        return choice.choices[0] if choice.choices else (int(choice.high) if choice.integer else choice.high)

    params = trial_parameters(coincident)
    assert params["pulse_mapping"] == "coincidence" and params["bit_length"] == int(bits.high)
    assert HybridTrainingParams.model_validate(params).bit_length == int(bits.high)


def test_a_conditional_choice_is_asked_only_when_its_condition_holds():
    space = (Choice("pulse_mapping", choices=("round", "coincidence")),
             Choice("bit_length", low=4, high=64, integer=True, when=("pulse_mapping", "coincidence")))  # fmt: skip
    asked: list[str] = []

    def pick(value: str):
        def suggest(choice: Choice) -> object:
            asked.append(choice.name)
            return value if choice.choices else 16

        return suggest

    assert trial_parameters(pick("round"), space) == {"pulse_mapping": "round"}
    assert trial_parameters(pick("coincidence"), space) == {"pulse_mapping": "coincidence", "bit_length": 16}
    assert asked == ["pulse_mapping", "pulse_mapping", "bit_length"]


def test_a_choice_the_user_sets_is_not_searched_and_still_decides_conditions():
    space = (Choice("pulse_mapping", choices=("round", "coincidence")),
             Choice("bit_length", low=4, high=64, integer=True, when=("pulse_mapping", "coincidence")),
             Choice("w_max_0", low=0.5, high=2.0), Choice("w_max_1", low=1.0, high=4.0))  # fmt: skip
    assert [c.name for c in free_space({"pulse_mapping": "coincidence", "epochs": 4}, space)] == [
        "bit_length", "w_max_0", "w_max_1"
    ]  # fmt: skip
    assert [c.name for c in free_space({"w_max": [1.0, 2.0]}, space)] == ["pulse_mapping", "bit_length"]
    assert [c.name for c in free_space({"pulse_mapping": "round"}, space)] == ["w_max_0", "w_max_1"]
    rest = free_space({"pulse_mapping": "coincidence"}, space)
    asked: list[str] = []

    def low(choice: Choice) -> object:
        asked.append(choice.name)
        return choice.low

    params = trial_parameters(low, rest, {"pulse_mapping": "coincidence"})
    assert params == {"bit_length": 4, "w_max": [0.5, 1.0]} and "pulse_mapping" not in asked
    assert trial_parameters(low, rest, {"pulse_mapping": "round"}) == {"w_max": [0.5, 1.0]}


def test_a_search_with_a_choice_set_never_varies_it(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        sid = start_search(store, {"trials": 3, "loss": "mse"}, {"name": "twin"})
        seen: list[dict] = []

        def cases(params: dict) -> Measured:
            seen.append(params)
            return FakeCases()({**params, "loss": "mse"})

        outcome = run_search(store, 3, cases, sid, seed=1, fixed={"loss": "mse", "epochs": 4})
    assert len(seen) == 3 and not any("loss" in p for p in seen)
    assert all("w_max" in t.parameters and "loss" not in t.parameters for t in outcome.trials)


# ---------------------------------------------------------------------- the resumable search
class FakeCases:
    """Stands in for the training runs: accuracies a smooth function of the trial's choices
    (best near w_max = [1, 2], mse), every call recorded; raises KeyboardInterrupt on call
    ``interrupt_at`` (a search killed while a trial's cases run)."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        self.calls: list[dict] = []
        self.interrupt_at = interrupt_at

    def __call__(self, params: dict) -> Measured:
        self.calls.append(params)
        if self.interrupt_at is not None and len(self.calls) == self.interrupt_at:
            raise KeyboardInterrupt
        off = abs(math.log2(params["w_max"][0])) + abs(math.log2(params["w_max"][1] / 2))
        off += 0.0 if params["loss"] == "mse" else 1.0
        test, train = paper_like()
        test = {k: v - off for k, v in test.items()}
        train = {k: v - off for k, v in train.items()}
        return Measured(test, train, {name: i for i, name in enumerate(scored_cases())})


def test_a_search_records_every_trial_and_its_best_is_the_lowest_score(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        sid = start_search(store, {"trials": 5, "train_limit": 100}, {"name": "twin"})
        cases = FakeCases()
        outcome = run_search(store, 5, cases, sid, seed=3)
        assert [t.number for t in outcome.trials] == [0, 1, 2, 3, 4]
        assert len(cases.calls) == 5
        assert outcome.best.score == min(t.score for t in outcome.trials)
        assert store.run(sid).status == "completed"
        stored, pending = stored_trials(store, sid)
        assert [t.number for t in stored] == [0, 1, 2, 3, 4] and pending == {}
        assert stored[2].parameters == outcome.trials[2].parameters == cases.calls[2]
        assert stored[0].run_ids["fp"] == scored_cases().index("fp")


def test_the_first_trial_of_a_search_is_the_protocols_defaults(tmp_path: Path):
    from protocols.training.params import HybridTrainingParams

    defaults = HybridTrainingParams()
    with Store(tmp_path / "s.sqlite") as store:
        sid = start_search(store, {"trials": 2}, {"name": "twin"})
        cases = FakeCases()
        run_search(store, 2, cases, sid, seed=5)
    first = cases.calls[0]
    assert first["w_max"] == [float(w) for w in defaults.w_max]
    for name in ("pulse_mapping", "loss", "fine_counts", "init_scale", "reset_level", "reset_interval"):
        assert first[name] == getattr(defaults, name), name
    assert "bit_length" not in first  # the default mapping asks for none
    assert set(default_choices()) == {c.name for c in SEARCH_SPACE}
    assert cases.calls[1] != first


def test_a_killed_search_resumes_once_rerunning_the_trial_it_was_in(tmp_path: Path):
    db = tmp_path / "s.sqlite"
    with Store(db) as store:
        sid = start_search(store, {"trials": 4}, {"name": "twin"})
        first = FakeCases(interrupt_at=3)
        with pytest.raises(KeyboardInterrupt):
            run_search(store, 4, first, sid, seed=0)
        assert store.run(sid).status == "interrupted"
        done, pending = stored_trials(store, sid)
        assert [t.number for t in done] == [0, 1] and list(pending) == [2]
    with Store(db) as store, Store(db) as other:
        settings = claim_search(store, sid)
        assert settings == {"trials": 4}
        with pytest.raises(RunClaimed, match="already running"):
            claim_search(other, sid)
        second = FakeCases()
        outcome = run_search(store, 4, second, sid, seed=0)
    # trial 2 ran again with the choices it had, then trial 3; nothing doubled
    assert second.calls[0] == first.calls[2]
    assert len(second.calls) == 2
    # trial 3 is a new draw: the resumed optimiser does not replay the first trials' choices
    assert second.calls[1] not in first.calls
    assert [t.number for t in outcome.trials] == [0, 1, 2, 3]
    with Store(db) as store:
        done, pending = stored_trials(store, sid)
        assert [t.number for t in done] == [0, 1, 2, 3] and pending == {}
        assert store.run(sid).status == "completed"


def test_only_a_search_run_resumes_as_a_search(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        rid = store.create_run("potentiation-cycling", {}, {"name": "twin"}, "twin")
        store.finish_run(rid, "interrupted")
        with pytest.raises(ConfigError, match="not a search"):
            claim_search(store, rid)


# ---------------------------------------------------------------------- the command
def test_reproduce_search_runs_trials_of_the_scored_cases_and_ranks_them(tmp_path: Path):
    from typer.testing import CliRunner

    from hil.cli import app
    from tests.helpers import write_tiny_mnist

    data = write_tiny_mnist(tmp_path / "mnist", 40, 20)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "reproduce", "choi2021", "--search", "2", "--epochs", "1", "--train-limit", "20", "--test-limit", "20",
        "--workers", "2", "--out", str(out), "--data-dir", str(data), "--set", "hidden=4", "--set", "eval_batch=10",
        "--set", "fine_counts=same",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "best: trial" in result.output
    md = (out / "search.md").read_text()
    assert md.count("| 0 |") + md.count("| 1 |") == 2 and "--set loss=" in md
    # each trial's accuracy on every paper target, next to the paper's (the first row)
    header = next(line for line in md.splitlines() if line.startswith("| trial |"))
    assert "| fp | hybrid_s50_k10 | hybrid_s50_k10 train |" in header
    assert "| paper | - | - | - | 97.92 | 97.00 | 99.66 |" in md
    searching = next(line for line in result.output.splitlines() if line.startswith("searching: "))
    assert "loss" in searching and "fine_counts" not in searching  # a choice set is not searched
    assert "--set fine_counts=same" in md  # and the confirming command keeps it
    with Store(out / "choi2021.sqlite") as store:
        runs = store.runs_df()
        (search_id,) = runs.loc[runs["protocol"] == "choi2021-search", "id"]
        done, pending = stored_trials(store, int(search_id))
        assert [t.number for t in done] == [0, 1] and pending == {}
        assert store.run(int(search_id)).status == "completed"
        # every trial ran each distinct scored case once (c2c_0.34 is hybrid_s50_k10)
        for trial in done:
            assert set(trial.run_ids) == set(scored_cases())
            assert len(set(trial.run_ids.values())) == len(scored_cases()) - 1
        training = runs[runs["protocol"] == "hybrid-training"]
        assert len(training) == 2 * (len(scored_cases()) - 1)
        assert (training["status"] == "completed").all()


def _tiny_reproduce(tmp_path: Path, *options: str) -> tuple[list[str], Path]:
    """The command line of ``rram-hil reproduce choi2021 OPTIONS`` on a tiny MNIST (written once
    under ``tmp_path``), one worker, a 4-unit hidden layer; and its database."""
    import sys

    from tests.helpers import write_tiny_mnist

    data = tmp_path / "mnist"
    if not data.exists():
        write_tiny_mnist(data, 40, 20)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "hil.cli", "reproduce", "choi2021", *options, "--train-limit", "20",
            "--test-limit", "20", "--workers", "1", "--out", str(out), "--data-dir", str(data),
            "--set", "hidden=4", "--set", "eval_batch=10"]  # fmt: skip
    return args, out / "choi2021.sqlite"


def _terminate_when(args: list[str], db: Path, query: str, at_least: int) -> tuple[int, bool, int, str]:
    """Start ``args``, wait (120 s at most) until ``query`` counts ``at_least`` in ``db``, send
    SIGTERM; returns the count seen, whether the process still ran then, its exit status and
    its output."""
    import os
    import signal
    import subprocess

    from tests.helpers import wait_for_count

    env = {**os.environ, "NO_COLOR": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen = wait_for_count(db, query, at_least, proc, 120)
    running = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    return seen, running, proc.returncode, output


def test_a_terminated_search_is_marked_interrupted_and_says_how_to_resume(tmp_path: Path):
    """SIGTERM (a job scheduler's stop, `kill`) ends a search as Ctrl-C does: the search run is
    marked interrupted, not left running, and the command names --resume-search."""
    args, db = _tiny_reproduce(tmp_path, "--search", "50", "--epochs", "1")
    query = "select count(*) from events where kind = 'search-trial'"
    done, running, status, output = _terminate_when(args, db, query, 1)
    assert done >= 1 and running, "the search did not finish a trial in time"
    assert status == 130, output
    assert "--resume-search 1" in output and "Traceback" not in output
    with Store(db) as store:
        assert store.run(1).status == "interrupted"
        finished, _ = stored_trials(store, 1)
        assert len(finished) >= 1  # the trials done are kept


def test_a_terminated_sweep_says_how_to_continue_and_continues_its_runs(tmp_path: Path):
    """SIGTERM ends a sweep as Ctrl-C does (exit 130, the --sweep NAME that continues it, no
    traceback); run again under that name it resumes the interrupted case: one run per case."""
    args, db = _tiny_reproduce(tmp_path, "--cases", "hybrid_s50_k10", "--epochs", "400", "--sweep", "stopped")
    epochs, running, status, output = _terminate_when(args, db, "select count(*) from epochs", 2)
    assert epochs >= 2 and running, "the sweep did not start its case in time"
    assert status == 130, output
    assert "interrupted: continue with --sweep stopped" in output and "Traceback" not in output
    with Store(db) as store:
        (run,) = store.runs_df()["id"]  # its process gone, the worker's run is no longer running
        assert store.run(int(run)).status == "interrupted"
    query = "select count(*) from events where kind = 'resumed'"
    resumed, _, status, output = _terminate_when(args, db, query, 1)
    assert resumed == 1 and status == 130, output
    with Store(db) as store:
        assert list(store.runs_df()["id"]) == [run]  # the same run continued, none started anew


def test_reproduce_search_bad_input_is_one_line_and_creates_nothing(tmp_path: Path):
    from typer.testing import CliRunner

    from hil.cli import app

    out = tmp_path / "o"
    for args, field in ((["--set", "lr=-1"], "lr"), (["--cases", "fp"], "--cases")):
        result = CliRunner().invoke(app, ["reproduce", "choi2021", "--search", "2", "--out", str(out),
                                          "--data-dir", str(tmp_path), *args])  # fmt: skip
        assert result.exit_code == 2 and field in result.output and "Traceback" not in result.output
        assert not out.exists()
    result = CliRunner().invoke(app, ["reproduce", "choi2021", "--resume-search", "3", "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output and not out.exists()
