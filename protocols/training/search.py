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

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

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
    Choice("pulse_mapping", choices=("round", "stochastic")),
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


def trial_parameters(suggest: Suggest, space: tuple[Choice, ...] = SEARCH_SPACE) -> dict[str, Any]:
    """The ``hybrid-training`` parameters of one trial: every choice of ``space`` asked of
    ``suggest`` (a conditional choice only when its condition holds), ``w_max_*`` joined into
    the ``w_max`` list."""
    values: dict[str, Any] = {}
    for choice in space:
        if choice.when is not None and values.get(choice.when[0]) != choice.when[1]:
            continue
        values[choice.name] = suggest(choice)
    layers = sorted(k for k in values if k.startswith("w_max_"))
    if layers:
        values["w_max"] = [float(values.pop(k)) for k in layers]
    return values


def optuna_suggest(trial: Any) -> Suggest:
    """:data:`Suggest` backed by an Optuna trial (``suggest_categorical``/``_float``/``_int``)."""

    def suggest(choice: Choice) -> Any:
        if choice.choices:
            return trial.suggest_categorical(choice.name, list(choice.choices))
        if choice.integer:
            return trial.suggest_int(choice.name, int(choice.low), int(choice.high), log=choice.log)
        return trial.suggest_float(choice.name, choice.low, choice.high, log=choice.log)

    return suggest
