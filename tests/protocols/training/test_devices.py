"""The bookkeeping of programming effort and the write-verify rule shared with ``write-verify``."""

from __future__ import annotations

import numpy as np
import pytest

from hil.types import ProgramResult, Pulse
from protocols.training import HybridTrainingParams
from protocols.training.devices import ProgramStats, reset_result, verify_pulses
from protocols.training.params import (
    DeviceParams,
    LearningParams,
    NetworkParams,
    PulseParams,
    RecordParams,
    ResetParams,
    ScheduleParams,
    VerifyParams,
)
from protocols.write_verify import correction_pulses, pulse_counts

SET = Pulse(2.0, 100e-6)
RESET = Pulse(-4.0, 50e-6)


def test_program_stats_accounts_a_program_call() -> None:
    st = ProgramStats()
    st.add(ProgramResult("L1_Gp", SET, 12, 5, 4, 0.0), 3e-9)
    st.add(ProgramResult("L1_Gp", SET, 3, 3, 1, 0.0), 1e-9)
    assert (st.calls, st.pulses, st.cells, st.resets) == (2, 15, 8, 0)
    assert st.energy_J == pytest.approx(4e-9)
    assert st.time_parallel_s == pytest.approx(5 * 100e-6)
    assert st.time_serial_s == pytest.approx(15 * 100e-6)


def test_program_stats_accounts_a_strong_reset_as_resets_not_calls() -> None:
    st = ProgramStats()
    result = reset_result("L1_Gp", 7, RESET, 5)
    assert (result.pulses_applied, result.cells_programmed, result.max_count) == (35, 7, 5)
    assert result.duration_s == pytest.approx(5 * 50e-6)
    st.add(result, 2e-9, reset=True)
    assert (st.calls, st.pulses, st.cells, st.resets) == (0, 35, 0, 7)
    assert st.energy_J == 2e-9
    assert st.time_parallel_s == 5 * 50e-6
    assert st.time_serial_s == 35 * 50e-6


def _old_training_rule(shortfall_S: np.ndarray, step_S: float, iteration: int, most: int) -> np.ndarray:
    """The training protocol's write-verify rule as it was written before it was shared."""
    steps = np.maximum(shortfall_S, 0.0) / step_S
    aim = np.floor(0.75 * steps) if iteration == 0 else np.floor(steps)
    n = np.where(steps > 0.5, np.maximum(aim, 1.0), 0.0).astype(np.int64)
    return np.minimum(n, most)


def test_verify_pulses_is_the_former_training_rule() -> None:
    rng = np.random.default_rng(0)
    step = 0.9e-6
    shortfall = rng.normal(0.0, 20 * step, 5000)
    shortfall[:6] = [0.0, 0.5 * step, 0.5000001 * step, step, -step, 1e3 * step]
    for iteration in (0, 1, 2):
        for most in (1, 7, 100_000):
            got = verify_pulses(shortfall, step, iteration, most)
            assert got.dtype == np.int64
            np.testing.assert_array_equal(got, _old_training_rule(shortfall, step, iteration, most))


def test_pulse_counts_is_the_former_write_verify_rule() -> None:
    rng = np.random.default_rng(1)
    error = rng.normal(0.0, 5e-6, 5000)
    for most in (1, 20, 100_000):
        old = np.clip(np.rint(np.abs(error) / 0.5e-6), 1, most).astype(np.int64)
        np.testing.assert_array_equal(pulse_counts(error, 0.5e-6, most), old)
        np.testing.assert_array_equal(correction_pulses(error, 0.5e-6, most), old)


def test_correction_pulses_dead_band_and_fraction() -> None:
    step = 1e-6
    error = np.array([0.2, 0.5, 0.6, 2.0, 4.0, -4.0]) * step
    np.testing.assert_array_equal(
        correction_pulses(error, step, 100, fraction=0.75, rounding="down", dead_band_steps=0.5),
        [0, 0, 1, 1, 3, 3],
    )
    np.testing.assert_array_equal(correction_pulses(error, step, 2), [1, 1, 1, 2, 2, 2])


def test_the_flat_parameters_are_the_groups_together() -> None:
    groups = (
        NetworkParams,
        DeviceParams,
        ScheduleParams,
        LearningParams,
        PulseParams,
        ResetParams,
        VerifyParams,
        RecordParams,
    )
    names = [n for g in groups for n in g.model_fields]
    assert len(names) == len(set(names)) == 44  # 41 before transfer_scale (ex-situ), 42 before bit_length, 43 before fine_pulse_mapping
    assert list(HybridTrainingParams.model_fields) == names
    p = HybridTrainingParams.model_validate({"hidden": "30", "states": 20, "lr": 0.2})
    assert all(isinstance(p, g) for g in groups)
    assert list(p.model_dump(mode="json")) == names
    assert p.sizes == [784, 30, 10] and p.small_states == 20
