"""The training phases of the hybrid synapse and the switch between them.

Dynamic tuning updates only the big devices G; fine tuning updates only the small devices g, G
frozen (Choi et al. 2021). After each dynamic epoch :func:`next_phase` decides, from the training
accuracies alone, whether the next epoch is fine tuning: when the accuracy gained less than
``switch_threshold_pp`` over the epoch (once ``min_dynamic_epochs`` are done), or at the latest
after ``max_dynamic_epochs``; never after the last epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocols.training.params import ScheduleParams


def active_pair(phase: str) -> tuple[str, str]:
    """The (plus, minus) device kinds a training phase updates: G in dynamic, g in fine tuning."""
    return ("gp", "gm") if phase == "fine" else ("Gp", "Gm")


@dataclass(frozen=True)
class PhaseDecision:
    """What :func:`next_phase` decided after one epoch.

    Attributes:
        phase: the phase of the next epoch.
        switched: whether that is a switch from dynamic to fine tuning.
        dynamic_epochs: the dynamic-tuning epochs done, this one included.
        gain_pp: the training accuracy gained over this epoch (percentage points), when it was
            a dynamic epoch that counts.
        forced: the switch came from ``max_dynamic_epochs``, not from the accuracy.
    """

    phase: str
    switched: bool
    dynamic_epochs: int
    gain_pp: float | None = None
    forced: bool = False


def next_phase(
    epoch: int,
    phase: str,
    train_accuracies_pp: Sequence[float],
    dynamic_epochs: int,
    schedule: ScheduleParams,
    two_phases: bool = True,
) -> PhaseDecision:
    """The phase after ``epoch``, a pure function of the run's history.

    Args:
        epoch: the epoch just done (0: the initial state, before any training).
        phase: its phase (``dynamic``, ``fine``; other phases never switch).
        train_accuracies_pp: training accuracy (%) after every epoch so far, ``epoch``'s last.
        dynamic_epochs: the dynamic-tuning epochs done before ``epoch``.
        schedule: the epochs, the threshold and the least and most dynamic epochs.
        two_phases: whether the run has two phases at all (hybrid synapse, in-situ); if not,
            the phase stays and no dynamic epochs are counted.
    """
    if not (epoch > 0 and phase == "dynamic" and two_phases):
        return PhaseDecision(phase, False, dynamic_epochs)
    done = dynamic_epochs + 1
    before = train_accuracies_pp[-2] if len(train_accuracies_pp) >= 2 else 0.0
    gain = train_accuracies_pp[-1] - before
    due = done >= schedule.min_dynamic_epochs and gain < schedule.switch_threshold_pp
    forced = schedule.max_dynamic_epochs is not None and done >= schedule.max_dynamic_epochs
    if (due or forced) and epoch < schedule.epochs:
        return PhaseDecision("fine", True, done, gain, bool(forced and not due))
    return PhaseDecision(phase, False, done, gain, bool(forced and not due))
