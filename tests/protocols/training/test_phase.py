"""The switch from dynamic to fine tuning as a pure function of the run's history."""

from __future__ import annotations

from protocols.training.params import ScheduleParams
from protocols.training.phase import PhaseDecision, active_pair, next_phase


def schedule(**values: object) -> ScheduleParams:
    return ScheduleParams.model_validate({"epochs": 10, "switch_threshold_pp": 0.5, **values})


def test_active_pair_is_g_big_except_in_fine_tuning() -> None:
    assert active_pair("dynamic") == ("Gp", "Gm")
    assert active_pair("fine") == ("gp", "gm")
    assert active_pair("ex-situ") == ("Gp", "Gm")


def test_epoch_zero_and_other_phases_never_switch_nor_count() -> None:
    assert next_phase(0, "dynamic", [10.0], 0, schedule()) == PhaseDecision("dynamic", False, 0)
    for phase in ("fine", "fp", "ex-situ", "init"):
        assert next_phase(3, phase, [10.0, 50.0, 50.0, 50.0], 2, schedule()) == PhaseDecision(phase, False, 2)


def test_single_synapse_keeps_dynamic_and_counts_nothing() -> None:
    assert next_phase(2, "dynamic", [10.0, 80.0, 80.0], 0, schedule(), two_phases=False) == PhaseDecision(
        "dynamic", False, 0
    )


def test_switches_when_the_gain_falls_below_the_threshold() -> None:
    keep = next_phase(1, "dynamic", [10.0, 80.0], 0, schedule())
    assert keep == PhaseDecision("dynamic", False, 1, 70.0, False)
    switch = next_phase(2, "dynamic", [10.0, 80.0, 80.25], 1, schedule())
    assert switch.phase == "fine" and switch.switched and switch.dynamic_epochs == 2
    assert switch.gain_pp is not None and abs(switch.gain_pp - 0.25) < 1e-12 and not switch.forced
    # a gain of exactly the threshold does not switch
    assert not next_phase(2, "dynamic", [10.0, 80.0, 80.5], 1, schedule()).switched


def test_min_dynamic_epochs_delays_the_switch() -> None:
    early = next_phase(1, "dynamic", [10.0, 10.1], 0, schedule(min_dynamic_epochs=2))
    assert not early.switched and early.dynamic_epochs == 1
    assert next_phase(2, "dynamic", [10.0, 10.1, 10.2], 1, schedule(min_dynamic_epochs=2)).switched


def test_max_dynamic_epochs_forces_the_switch() -> None:
    forced = next_phase(1, "dynamic", [10.0, 80.0], 0, schedule(max_dynamic_epochs=1))
    assert forced == PhaseDecision("fine", True, 1, 70.0, True)
    # due by the accuracy as well: not reported as forced
    both = next_phase(1, "dynamic", [80.0, 80.1], 0, schedule(max_dynamic_epochs=1))
    assert both.switched and not both.forced


def test_never_switches_after_the_last_epoch() -> None:
    history = [10.0 * e for e in range(11)]  # still gaining 10 pp per epoch: only forced is due
    last = next_phase(10, "dynamic", history, 9, schedule(max_dynamic_epochs=1))
    assert last == PhaseDecision("dynamic", False, 10, 10.0, True)
    stalled = next_phase(10, "dynamic", [10.0] + [50.0] * 10, 9, schedule())
    assert stalled == PhaseDecision("dynamic", False, 10, 0.0, False)


def test_the_first_gain_is_measured_from_zero() -> None:
    """Without an earlier accuracy the gain is the accuracy itself (as for a run's epoch 1)."""
    assert next_phase(1, "dynamic", [0.3], 0, schedule()).switched
