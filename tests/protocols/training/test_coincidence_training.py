"""``pulse_mapping=coincidence``: the update as row and column pulse streams on the twin.

The update's calls (one ``program_streams`` per array with inputs >= 0, at most two with signed
inputs), each cell's pulses on the device of its change's sign, the mean count against the
rounded rule's target, the touched-cells mask and the pulse log against the applied
coincidences, and a short run that learns.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hil.backend import coincidence_counts
from hil.engine import prepare
from hil.errors import ConfigError
from hil.station import load_station
from hil.store import Store
from hil.store.training import epochs_df
from protocols.training import HybridTrainingParams
from tests.protocols.training.test_hybrid_training import array_network, run


def _stream_calls(backend: Any) -> list[tuple[str, np.ndarray, np.ndarray]]:
    calls = [c for c in backend.calls if c[0].startswith("program")]
    assert all(c[0] == "program_streams" for c in calls), [c[0] for c in calls]
    return [(c[1][0], c[1][1], c[1][2]) for c in calls]


def test_nonnegative_inputs_take_one_stream_call_per_array_and_the_mean_count_is_the_target(
    store: Store, data_dir: str
) -> None:
    net, backend = array_network(store, data_dir, pulse_mapping="coincidence", bit_length=20)
    lay = net.layers[1]
    x = np.linspace(0.0, 1.0, lay.rows)
    delta = np.linspace(-1.0, 1.0, lay.cols)
    delta[lay.cols // 2] = 0.0
    # 1.5 pulses expected at the largest |x delta| on the + device
    scale = 1.5 * lay.alpha * lay.step["Gp"] / net.p.lr
    delta = delta * scale
    plus_total = np.zeros((lay.rows, lay.cols))
    n = 300
    for _ in range(n):
        backend.calls.clear()
        net.update(lay, x, delta, "dynamic", 1, 0, nonnegative=True)
        calls = _stream_calls(backend)
        assert len(calls) <= 2 and len({name for name, _, _ in calls}) == len(calls)
        for name, rows, cols in calls:
            assert rows.shape == (lay.rows, 20) and cols.shape == (lay.cols, 20)
            counts = coincidence_counts(rows, cols)
            # + gets the cells whose change -x delta is positive (delta < 0), - the others
            wrong = delta >= 0 if name == lay.names["Gp"] else delta <= 0
            assert not counts[:, wrong].any()
            if name == lay.names["Gp"]:
                plus_total += counts
    target = net.p.lr * np.abs(np.multiply.outer(x, np.minimum(delta, 0.0))) / (lay.alpha * lay.step["Gp"])
    assert target.max() == pytest.approx(1.5)
    big = target > 0.5
    np.testing.assert_allclose(plus_total[big] / n, target[big], rtol=0.2)
    assert abs(plus_total.sum() / n - target.sum()) < 0.03 * target.sum()


def test_signed_inputs_take_at_most_two_calls_per_array_each_cell_on_its_sign(store: Store, data_dir: str) -> None:
    net, backend = array_network(store, data_dir, pulse_mapping="coincidence", bit_length=10)
    lay = net.layers[1]
    rng = np.random.default_rng(3)
    x = rng.uniform(-1.0, 1.0, lay.rows)
    delta = rng.uniform(-1.0, 1.0, lay.cols) * 2.0 * lay.alpha * lay.step["Gp"] / net.p.lr
    direction = -np.multiply.outer(np.sign(x), np.sign(delta))
    logged: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    net.p = net.p.model_copy(update={"log_pulses": True})
    net._log_program = lambda name, rr, cc, counts, *a: logged.append((name, rr, cc, counts))  # type: ignore[method-assign]
    mask = np.zeros((lay.rows, lay.cols), dtype=bool)
    net._touched[(lay.index, "Gp")] = mask
    backend.calls.clear()
    net.update(lay, x, delta, "dynamic", 1, 0)
    calls = _stream_calls(backend)
    names = [name for name, _, _ in calls]
    assert 2 <= len(calls) <= 4 and all(names.count(n) <= 2 for n in names)
    applied: dict[str, np.ndarray] = {}
    for name, rows, cols in calls:
        counts = coincidence_counts(rows, cols)
        applied[name] = applied.get(name, 0) + counts
        want = 1 if name == lay.names["Gp"] else -1
        assert np.all(direction[counts > 0] == want)
    assert sum(int(a.sum()) for a in applied.values()) > 0
    # every programmed cell is marked for the next incremental saturation check
    for a in applied.values():
        assert mask[a > 0].all()
    # the log holds the counts that were applied, cell by cell
    for name, a in applied.items():
        logged_counts = np.zeros_like(a)
        for lname, rr, cc, counts in logged:
            if lname == name:
                logged_counts[rr, cc] += counts
        assert np.array_equal(logged_counts, a)


def test_a_short_coincidence_run_learns(store: Store, data_dir: str) -> None:
    ep = epochs_df(store, run(store, data_dir, pulse_mapping="coincidence", epochs=3, train_limit=120, hidden=[20]))
    assert ep["test_accuracy"].iloc[-1] >= 50  # chance is 10 %
    assert ep["test_accuracy"].iloc[-1] > ep["test_accuracy"].iloc[0] + 30
    assert ep["pulses"].iloc[1:].sum() > 0


def test_bit_length_is_validated_with_its_range(data_dir: str) -> None:
    assert HybridTrainingParams.model_validate({"pulse_mapping": "coincidence"}).bit_length == 10
    for bad in (0, 1001):
        with pytest.raises(ConfigError) as err:
            prepare("hybrid-training", load_station(None), {"pulse_mapping": "coincidence", "bit_length": bad,
                                                            "data_dir": data_dir})  # fmt: skip
        message = str(err.value)
        assert "\n" not in message
        assert "bit_length: " in message and f"got {bad}" in message and "1 <= bit_length <= 1000" in message
