"""The general update path's pulse counts: the compiled pass against its numpy reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hil.station import load_station
from hil.store import Store
from hil.store.training import epochs_df
from protocols.training import devices
from protocols.training.counts import host_counts, host_counts_reference
from tests.helpers import run as run_protocol


def _inputs(seed: int, n_rows: int, n_cols: int, signed: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0 if signed else 0.01, 1.0, n_rows)
    delta = rng.normal(0.0, 0.05, n_cols)
    delta[rng.random(n_cols) < 0.1] = 0.0  # exact zeros: no pulse on either device
    return x, delta, rng.random((n_rows, n_cols))


@pytest.mark.parametrize("stochastic", [True, False])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("step, cap", [(0.02, 3), (0.002, 50), (1e-4, 7)])
def test_kernel_equals_the_reference_exactly(stochastic: bool, signed: bool, step: float, cap: int) -> None:
    x, delta, u = _inputs(int(step * 1e5) + cap + 2 * signed + stochastic, 37, 23, signed)
    for sign in (1.0, -1.0):
        got = host_counts(x, delta, -0.1, sign, step, cap, u, stochastic)
        want = host_counts_reference(x, delta, -0.1, sign, step, cap, u, stochastic)
        for g, w in zip(got, want, strict=True):
            assert g.dtype == np.int64
            np.testing.assert_array_equal(g, w)
        rows, cols, counts = got
        assert np.all(counts >= 1) and np.all(counts <= cap)
        flat = rows * delta.size + cols
        assert np.all(np.diff(flat) > 0)  # row-major, each cell once
        # the device of each sign gets only the cells whose change has that sign
        assert np.all(sign * -x[rows] * delta[cols] > 0)


def test_the_cap_binds_and_small_steps_count_many_pulses() -> None:
    x, delta, u = _inputs(3, 10, 10, False)
    _, _, capped = host_counts(x, delta, -0.1, 1.0, 1e-6, 5, u, False)
    assert capped.size and np.all(capped == 5)
    rows, cols, counts = host_counts(x, delta, -0.1, 1.0, 1e-3, 10**6, u, False)
    expected = np.rint(np.maximum(-0.1 * x[rows] * delta[cols], 0) / 1e-3)
    np.testing.assert_array_equal(counts, expected)


def test_stochastic_rounding_keeps_the_fraction_on_average() -> None:
    rng = np.random.default_rng(7)
    x, delta = np.full(200, 1.0), np.full(200, -2.5)  # p = 0.1 * 2.5 / 0.1 = 2.5 pulses a cell
    rows, cols, counts = host_counts(x, delta, -0.1, 1.0, 0.1, 100, rng.random((200, 200)), True)
    assert set(np.unique(counts)) == {2, 3}
    assert counts.sum() / 40_000 == pytest.approx(2.5, abs=0.01)  # 5 standard errors: 0.0125


def test_a_training_run_is_the_same_on_the_reference(store: Store, data_dir: str, monkeypatch: Any) -> None:
    """The whole stochastic-mapping run, compiled against reference: the same pulses, resets and
    accuracies epoch by epoch (the rng's draws are consumed identically)."""
    params: dict[str, Any] = {"hidden": [6], "train_limit": 60, "test_limit": 20, "eval_batch": 16, "epochs": 2,
              "max_dynamic_epochs": 1, "states": 10, "pulse_mapping": "stochastic", "data_dir": data_dir}  # fmt: skip
    columns = ["epoch", "phase", "pulses", "resets", "train_accuracy", "test_accuracy"]
    compiled = epochs_df(store, run_protocol(store, "hybrid-training", load_station(None), **params).run_id)
    monkeypatch.setattr(devices, "host_counts", host_counts_reference)
    reference = epochs_df(store, run_protocol(store, "hybrid-training", load_station(None), **params).run_id)
    assert compiled["pulses"].sum() > 0
    assert compiled[columns].equals(reference[columns])
