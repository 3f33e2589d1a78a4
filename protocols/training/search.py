"""The choices Choi et al. 2021 leave open, as a search space, and one score against the paper.

The paper states the network, the device, the learning rate and the two tuning phases, but not
the loss beyond "MSE", the initial weights, the conductance-to-weight scale, how a weight change
becomes pulses, or the occasional-reset schedule. A trial fixes one value of each
(:func:`trial_parameters`), runs the scored cases of the paper with it on a short budget, and is
scored against every number and trend the paper reports at once (:func:`score`): the
root-mean-square distance to the reported accuracies, in percentage points, plus the amount by
which each reported trend is violated. Lower is better; 0 reproduces the whole table.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hil.errors import ConfigError
from hil.store.schema import shown_db

#: The paper's reported accuracies (%) the score compares with: (case, column, value).
PAPER_TARGETS: tuple[tuple[str, str, float], ...] = (
    ("fp", "test", 97.92),
    ("hybrid_s50_k10", "test", 97.00),
    ("hybrid_s50_k10", "train", 99.66),
    ("hybrid_s50_k100", "test", 94.98),
    ("hybrid_g400_k10", "test", 97.34),
    ("hybrid_g400_k100", "test", 96.58),
    ("single_s10", "test", 9.8),
    ("hybrid_s10_k10", "test", 93.69),
)


@dataclass(frozen=True)
class Trend:
    """A reported trend: ``high`` should exceed ``low`` by at least ``margin_pp`` (percentage
    points; a negative margin allows ``high`` to fall short by that much)."""

    name: str
    high: str
    low: str
    margin_pp: float

    def violation(self, test: Mapping[str, float]) -> float:
        """How far (pp) the measured test accuracies fall short of the trend (0 when it holds)."""
        return max(0.0, test[self.low] + self.margin_pp - test[self.high])


#: The trends of the text and figures, as orderings of test accuracies.
PAPER_TRENDS: tuple[Trend, ...] = (
    Trend("k = 10 beats k = 1 (Fig. 5F)", "hybrid_s50_k10", "hybrid_s50_k1", 0.0),
    Trend("k = 10 beats k = 100 (Fig. 5F)", "hybrid_s50_k10", "hybrid_s50_k100", 0.0),
    Trend("a single 50-state synapse stays below the hybrid (Fig. 4A)", "hybrid_s50_k10", "single_s50", 0.0),
    Trend("k = 1 no better than a single synapse (Fig. 5C)", "single_s50", "hybrid_s50_k1", -1.0),
    Trend("400 g states beat 50 at k = 100 (Fig. 5F)", "hybrid_g400_k100", "hybrid_s50_k100", 0.0),
    Trend("programming variability up to 1 is harmless (Fig. 6B)", "c2c_1", "c2c_0.34", -1.0),
    Trend("programming variability beyond 1 costs accuracy (Fig. 6B)", "c2c_1", "c2c_2", 1.0),
    Trend("device-to-device variability up to 1 is harmless (Fig. 6C)", "d2d_1", "d2d_0", -1.0),
)


def scored_cases() -> list[str]:
    """Every case the score needs, in a stable order."""
    names = [c for c, _, _ in PAPER_TARGETS]
    for t in PAPER_TRENDS:
        names += [t.high, t.low]
    return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Score:
    """A trial's score and its parts.

    Attributes:
        value: ``rms_pp + sum(violations)`` (lower is better).
        rms_pp: root-mean-square distance to :data:`PAPER_TARGETS` (percentage points).
        deviations: measured minus reported, per ``case:column``.
        violations: how far each trend of :data:`PAPER_TRENDS` is violated (pp), by name.
    """

    value: float
    rms_pp: float
    deviations: dict[str, float]
    violations: dict[str, float]


def score(test: Mapping[str, float], train: Mapping[str, float]) -> Score:
    """Score measured accuracies (%, by case name) against everything the paper reports.

    Raises:
        KeyError: a case the score needs (:func:`scored_cases`) is missing.
    """
    columns = {"test": test, "train": train}
    deviations = {f"{case}:{col}": columns[col][case] - paper for case, col, paper in PAPER_TARGETS}
    rms = math.sqrt(sum(d * d for d in deviations.values()) / len(deviations))
    violations = {t.name: t.violation(test) for t in PAPER_TRENDS}
    return Score(rms + sum(violations.values()), rms, deviations, violations)


# ---------------------------------------------------------------------- the space of open choices
@dataclass(frozen=True)
class Choice:
    """One open choice: a categorical (``choices``) or a numeric range (``low``..``high``,
    ``log`` scaled, ``integer`` valued). ``when`` names another choice's value it depends on."""

    name: str
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    integer: bool = False
    when: tuple[str, Any] | None = None


#: The open choices searched, named by the ``hybrid-training`` parameter each one sets
#: (``w_max_0``/``w_max_1`` are the two layers' entries of ``w_max``).
SEARCH_SPACE: tuple[Choice, ...] = (
    Choice("pulse_mapping", choices=("round", "stochastic", "coincidence")),
    Choice("bit_length", low=4, high=128, log=True, integer=True, when=("pulse_mapping", "coincidence")),
    Choice("fine_pulse_mapping", choices=("same", "stochastic")),
    Choice("loss", choices=("mse", "cross_entropy")),
    Choice("fine_counts", choices=("same", "rescaled")),
    Choice("w_max_0", low=0.125, high=4.0, log=True),
    Choice("w_max_1", low=0.5, high=8.0, log=True),
    Choice("init_scale", low=0.25, high=2.0, log=True),
    Choice("reset_level", low=0.6, high=0.98),
    Choice("reset_interval", low=100, high=5000, log=True, integer=True),
    Choice("switch_threshold_pp", low=0.1, high=2.0, log=True),
)

#: A suggestion function: ``(choice) -> value`` (an optimiser's trial, a grid, a test's table).
Suggest = Callable[[Choice], Any]


def free_space(fixed: Mapping[str, Any], space: tuple[Choice, ...] = SEARCH_SPACE) -> tuple[Choice, ...]:
    """The choices of ``space`` left to search when the parameters ``fixed`` are set by the user
    (``reproduce choi2021 --search N --set NAME=VALUE``): a choice named in ``fixed`` is not
    searched (``w_max`` fixes both ``w_max_0`` and ``w_max_1``), nor one whose condition the
    fixed parameters rule out."""
    names = set(fixed) | ({"w_max_0", "w_max_1"} if "w_max" in fixed else set())
    return tuple(
        c for c in space
        if c.name not in names and not (c.when and c.when[0] in fixed and fixed[c.when[0]] != c.when[1])
    )  # fmt: skip


def trial_parameters(
    suggest: Suggest, space: tuple[Choice, ...] = SEARCH_SPACE, fixed: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``hybrid-training`` parameters of one trial: every choice of ``space`` asked of
    ``suggest`` (a conditional choice only when its condition holds, judged on the trial's own
    values or else on ``fixed``, the parameters the user set), ``w_max_*`` joined into the
    ``w_max`` list."""
    values: dict[str, Any] = {}
    fixed = fixed or {}
    for choice in space:
        if (
            choice.when is not None
            and values.get(choice.when[0], fixed.get(choice.when[0])) != choice.when[1]
        ):
            continue
        values[choice.name] = suggest(choice)
    layers = sorted(k for k in values if k.startswith("w_max_"))
    if layers:
        values["w_max"] = [float(values.pop(k)) for k in layers]
    return values


def default_choices(space: tuple[Choice, ...] = SEARCH_SPACE) -> dict[str, Any]:
    """The ``hybrid-training`` defaults as values of the choices of ``space`` (``w_max_i`` the
    default ``w_max`` of layer ``i``), each within its choice's range."""
    from protocols.training.params import HybridTrainingParams

    defaults = HybridTrainingParams()
    values: dict[str, Any] = {}
    for choice in space:
        if choice.name.startswith("w_max_"):
            w_max = list(defaults.w_max)
            value: Any = w_max[min(int(choice.name.rsplit("_", 1)[1]), len(w_max) - 1)]
        else:
            value = getattr(defaults, choice.name)
        if not choice.choices:
            value = min(max(value, choice.low), choice.high)
            value = int(round(value)) if choice.integer else float(value)
        values[choice.name] = value
    return values


def parameters_of(
    choices: Mapping[str, Any],
    space: tuple[Choice, ...] = SEARCH_SPACE,
    fixed: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run parameters of a trial whose choices were already made (``{choice name: value}``)."""
    return trial_parameters(lambda c: choices[c.name], space, fixed)


def optuna_suggest(trial: Any) -> Suggest:
    """:data:`Suggest` backed by an Optuna trial (``suggest_categorical``/``_float``/``_int``)."""

    def suggest(choice: Choice) -> Any:
        if choice.choices:
            return trial.suggest_categorical(choice.name, list(choice.choices))
        if choice.integer:
            return trial.suggest_int(choice.name, int(choice.low), int(choice.high), log=choice.log)
        return trial.suggest_float(choice.name, choice.low, choice.high, log=choice.log)

    return suggest


# ---------------------------------------------------------------------- the search, resumable
#: the ``protocol`` of a search's own run in the store (its trials are that run's events)
SEARCH_RUN = "choi2021-search"
TRIAL_STARTED = "search-trial-started"
TRIAL_DONE = "search-trial"


@dataclass(frozen=True)
class Measured:
    """What one trial's cases measured: final test and train accuracy (%) and run id by case."""

    test: dict[str, float]
    train: dict[str, float]
    run_ids: dict[str, int]


#: Runs the scored cases with one trial's parameters (on the trial's budget) and measures them.
RunTrial = Callable[[dict[str, Any]], Measured]


@dataclass(frozen=True)
class TrialRecord:
    """One finished trial as stored: its number, parameters, score and the case runs."""

    number: int
    parameters: dict[str, Any]
    score: float
    rms_pp: float
    violations: dict[str, float]
    deviations: dict[str, float]
    run_ids: dict[str, int]


@dataclass(frozen=True)
class SearchOutcome:
    search_id: int
    trials: list[TrialRecord]

    @property
    def best(self) -> TrialRecord:
        return min(self.trials, key=lambda t: (t.score, t.number))


def stored_trials(
    store: Any, search_id: int, unfinished_only: bool = True
) -> tuple[list[TrialRecord], dict[int, dict[str, Any]]]:
    """The finished trials of a search run, and the started-but-unfinished ones (every started
    one with ``unfinished_only=False``), by number: their raw choices and Optuna distributions,
    from the run's events."""
    events = store.events_df(search_id)
    done: dict[int, TrialRecord] = {}
    started: dict[int, dict[str, Any]] = {}
    for kind, detail in zip(events["kind"], events["detail"], strict=True):
        if kind == TRIAL_STARTED:
            started[int(detail["number"])] = detail
        elif kind == TRIAL_DONE:
            n = int(detail["number"])
            done[n] = TrialRecord(n, detail["parameters"], float(detail["score"]), float(detail["rms_pp"]),
                                  detail["violations"], detail["deviations"], detail["run_ids"])  # fmt: skip
    if unfinished_only:
        started = {n: d for n, d in started.items() if n not in done}
    return [done[n] for n in sorted(done)], started


def run_search(
    store: Any,
    trials: int,
    run_trial: RunTrial,
    search_id: int,
    seed: int = 0,
    on_trial: Callable[[TrialRecord], None] | None = None,
    fixed: Mapping[str, Any] | None = None,
) -> SearchOutcome:
    """Run a search to ``trials`` finished trials, as the run ``search_id`` of ``store``.

    The caller owns the run (it created it, or claimed it to resume: :meth:`Store.claim_run`).
    Every trial is recorded as events of that run: ``search-trial-started`` (its choices) before
    its cases run, ``search-trial`` (parameters, score and its parts, the case runs) when they
    are done, so a killed search resumes where it stopped: the finished trials are given back to
    the optimiser (Optuna's TPE sampler, seeded) and a trial that had started is run again with
    the same choices, once. The run is ``completed`` when ``trials`` trials are done; any
    exception or interrupt leaves it ``interrupted`` with the trials so far kept. Trial 0 is the
    protocol's defaults (:func:`default_choices`), so the ranking shows what the search gained.

    ``fixed``: parameters the user set for every case; the choices they name are not searched
    (:func:`free_space`).
    """
    import optuna
    from optuna.distributions import json_to_distribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = free_space(fixed or {})
    finished, started = stored_trials(store, search_id, unfinished_only=False)
    pending = {n: d for n, d in started.items() if n not in {t.number for t in finished}}
    study = optuna.create_study(
        direction="minimize", sampler=optuna.samplers.TPESampler(seed=sampler_seed(seed, started))
    )
    for record in finished:
        start = started[record.number]
        dists = {k: json_to_distribution(v) for k, v in start["distributions"].items()}
        frozen = optuna.trial.create_trial(params=start["choices"], distributions=dists, value=record.score)
        study.add_trial(frozen)
    try:
        number = max([t.number for t in finished] + list(pending) + [-1]) + 1
        queue = sorted(pending)  # started before the interruption: run again with their choices
        while len(finished) < trials:
            if queue:
                n = queue.pop(0)
                choices = pending[n]["choices"]
                dists = {k: json_to_distribution(v) for k, v in pending[n]["distributions"].items()}
                study.enqueue_trial(choices)
                trial = study.ask(dists)
            else:
                n, number = number, number + 1
                if n == 0:  # the first trial is the protocol's own defaults: the configuration to beat
                    study.enqueue_trial(default_choices(space))
                trial = study.ask()
                trial_parameters(optuna_suggest(trial), space, fixed)
                store.add_event(search_id, TRIAL_STARTED, {
                    "number": n, "choices": trial.params,
                    "distributions": {k: optuna.distributions.distribution_to_json(d)
                                      for k, d in trial.distributions.items()},
                })  # fmt: skip
            params = parameters_of(trial.params, space, fixed)
            measured = run_trial(params)
            s = score(measured.test, measured.train)
            study.tell(trial, s.value)
            record = TrialRecord(n, params, s.value, s.rms_pp, s.violations, s.deviations, measured.run_ids)
            store.add_event(search_id, TRIAL_DONE, {
                "number": n, "parameters": params, "score": s.value, "rms_pp": s.rms_pp,
                "violations": s.violations, "deviations": s.deviations, "run_ids": measured.run_ids,
            })  # fmt: skip
            finished.append(record)
            if on_trial is not None:
                on_trial(record)
    except BaseException as exc:
        store.finish_run(search_id, "interrupted", f"{type(exc).__name__}: {exc}"[:500])
        raise
    store.finish_run(search_id, "completed")
    return SearchOutcome(search_id, finished)


def sampler_seed(seed: int, started: Mapping[int, Any]) -> int:
    """The optimiser's seed for a search that has started the trials ``started`` (by number).

    A new search uses ``seed`` itself. A resumed one must not: the sampler's generator would start
    over and draw the same choices as the first trials again (its first ten are random draws),
    so it is seeded from ``seed`` and the number of the first trial it will start, the same
    for the same interruption, different from every earlier start."""
    if not started:
        return int(seed)
    import numpy as np

    first_new = max(started) + 1
    return int(np.random.SeedSequence([int(seed), first_new]).generate_state(1)[0])


def start_search(store: Any, parameters: Mapping[str, Any], station: Mapping[str, Any]) -> int:
    """A new search run (``protocol`` :data:`SEARCH_RUN`) owned by this process; returns its id.
    ``parameters``: the search's settings (trials, budget, seed), kept with the run."""
    return int(store.create_run(SEARCH_RUN, dict(parameters), dict(station), "twin"))


def claim_search(store: Any, search_id: int) -> dict[str, Any]:
    """Claim an interrupted or failed search run to resume it (one owner: a second claim is
    refused in one line); returns the settings it was started with."""
    info = store.run(search_id)
    if info.protocol != SEARCH_RUN:
        raise ConfigError(f"--resume-search: run {search_id} is a '{info.protocol}' run, not a search")
    store.claim_run(search_id)
    return dict(info.parameters)


# ---------------------------------------------------------------------- trials as sweeps
#: a search's default budget: the issue's short run (10,000 images x 4 epochs)
SEARCH_EPOCHS = 4
SEARCH_TRAIN_LIMIT = 10_000


def sweep_trials(
    common: Mapping[str, Any],
    out: Any,
    db: str,
    search_id: int,
    workers: int = 2,
    scheduler: str | None = None,
    station: str | None = None,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> RunTrial:
    """:data:`RunTrial` that runs the scored cases of a trial as one sweep of
    :func:`~protocols.training.choi2021.run_sweep` (``common`` the budget, the trial's choices on
    top, each case's own parameters over both), named after the search and the trial so that a
    trial run again after an interruption continues its cases' runs instead of starting new ones.
    Each trial's table goes to ``out/trial-NNN``."""
    from pathlib import Path

    from protocols.training.choi2021 import run_sweep, select_cases

    cases = select_cases(",".join(scored_cases()))

    def run(params: dict[str, Any]) -> Measured:
        key = json.dumps(params, sort_keys=True)
        name = f"search-{search_id}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
        result = run_sweep(
            cases, {**common, **params}, Path(out) / f"trial-{name}", db, workers, scheduler, station,
            on_result, sweep=name, figures=False,
        )  # fmt: skip
        failed = [r["case"] for r in result.rows if r["status"] != "completed"]
        if failed:
            raise ConfigError(
                f"search: trial case(s) did not complete: {', '.join(failed)} (see the runs in {shown_db(db)})"
            )
        rows = {r["case"]: r for r in result.rows}
        return Measured(
            {c: float(r["measured_test_accuracy"]) for c, r in rows.items()},
            {c: float(r["measured_train_accuracy"]) for c, r in rows.items()},
            {c: int(r["run_id"]) for c, r in rows.items()},
        )

    return run


def write_search_table(outcome: SearchOutcome, out: Any, settings: Mapping[str, Any]) -> Any:
    """``search.md`` (trials best first: score, its parts, the choices) and ``search.csv`` in ``out``."""
    from pathlib import Path

    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ranked = sorted(outcome.trials, key=lambda t: (t.score, t.number))
    rows = [
        {"trial": t.number, "score": t.score, "rms_pp": t.rms_pp, "violations_pp": sum(t.violations.values()),
         **{f"measured-paper {k}": v for k, v in t.deviations.items()},
         "parameters": json.dumps(t.parameters, sort_keys=True)}
        for t in ranked
    ]  # fmt: skip
    pd.DataFrame(rows).to_csv(out / "search.csv", index=False)
    lines = [
        "# Choi et al. 2021: search of the open choices (rram-hil)",
        "",
        f"Search run {outcome.search_id}; settings: "
        + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
        "",
        "Score = RMS distance to the paper's accuracies (pp) + the trends' violations (pp); lower is better.",
        "The accuracy columns are the trial's (%), the paper's in the first row. Each trial runs one seed,",
        "and on a short budget a score moves by a few points from seed to seed (docs/training.md): confirm",
        "a close ranking on more seeds (`--search 1 --seed S --set ...`) before trusting it.",
        "",
        "| trial | score | RMS (pp) | violations (pp) | "
        + " | ".join(_target_label(c, k) for c, k, _ in PAPER_TARGETS)
        + " | choices |",
        "|---|---|---|---|" + "---|" * len(PAPER_TARGETS) + "---|",
        "| paper | - | - | - | " + " | ".join(f"{v:.2f}" for _, _, v in PAPER_TARGETS) + " | - |",
    ]
    for t in ranked:
        choices = ", ".join(f"{k}={v}" for k, v in sorted(t.parameters.items()))
        measured = " | ".join(
            f"{v + t.deviations[f'{c}:{k}']:.2f}" if f"{c}:{k}" in t.deviations else "-"
            for c, k, v in PAPER_TARGETS
        )
        lines.append(
            f"| {t.number} | {t.score:.2f} | {t.rms_pp:.2f} | {sum(t.violations.values()):.2f} | {measured} | {choices} |"
        )
    best = outcome.best
    searched = {c.name for c in SEARCH_SPACE} | {"w_max"}
    confirm = {**{k: v for k, v in settings.items() if k in searched}, **best.parameters}
    lines += ["", "Confirm the best at full length:", "", "```bash",
              "rram-hil reproduce choi2021 " + " ".join(f"--set {k}={_cli_value(v)}" for k, v in sorted(confirm.items())),
              "```", ""]  # fmt: skip
    md = out / "search.md"
    md.write_text("\n".join(lines))
    return md


def _target_label(case: str, column: str) -> str:
    """A table header for one paper target: the case, and the column when it is not the test's."""
    return case if column == "test" else f"{case} {column}"


def _cli_value(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
