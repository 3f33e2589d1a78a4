"""A short hybrid-training run on the twin's compiled kernels against the same run on their numpy
references (:func:`sim_backend.kernels.use_reference`), and with incremental saturation checks
against whole-array ones: the same records per epoch, and pulses, resets and accuracies that
agree within stated tolerances.

Both runs draw the same random streams (the kernels take their Gaussian draws from the arrays'
streams in the same order), so they differ only by floating-point rounding, which can flip a
rounded pulse count now and then; the tolerances allow for that drift and no more: 2 % of the
pulses, 10 % (at least 3) of the resets, 5 percentage points of accuracy on 40 images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hil.station import load_station
from hil.store import Store
from hil.store.training import epochs_df
from protocols.training import devices
from protocols.training.devices import ArrayNetwork
from sim_backend import kernels
from tests.helpers import run as run_protocol
from tests.helpers import write_tiny_mnist

PARAMS = {
    "hidden": [16], "train_limit": 120, "test_limit": 40, "eval_batch": 32, "epochs": 3,
    "max_dynamic_epochs": 1, "reset_interval": 20, "seed": 4,
}  # fmt: skip


def _epochs(tmp_path: Path, name: str, data_dir: str) -> pd.DataFrame:
    store = Store(tmp_path / f"{name}.sqlite")
    outcome = run_protocol(store, "hybrid-training", load_station(None), **PARAMS, data_dir=data_dir)
    assert outcome.status == "completed", outcome.error
    ep = epochs_df(store, outcome.run_id)
    store.close()
    return ep


def test_compiled_and_reference_twins_train_alike(tmp_path: Path) -> None:
    data_dir = str(write_tiny_mnist(tmp_path / "mnist", 120, 40))
    compiled = _epochs(tmp_path, "compiled", data_dir)
    with kernels.use_reference():
        reference = _epochs(tmp_path, "reference", data_dir)
    assert list(compiled.columns) == list(reference.columns)
    assert list(compiled["epoch"]) == list(reference["epoch"]) == [0, 1, 2, 3]
    assert list(compiled["phase"]) == list(reference["phase"])
    assert "fine" in set(compiled["phase"])  # both phases are exercised
    for (_, a), (_, b) in zip(compiled.iterrows(), reference.iterrows(), strict=True):
        assert abs(a["pulses"] - b["pulses"]) <= 0.02 * max(b["pulses"], 1), a["epoch"]
        assert abs(a["resets"] - b["resets"]) <= max(3, 0.1 * b["resets"]), a["epoch"]
        assert abs(a["train_accuracy"] - b["train_accuracy"]) <= 5.0, a["epoch"]
        assert abs(a["test_accuracy"] - b["test_accuracy"]) <= 5.0, a["epoch"]
    assert compiled["pulses"].iloc[1:].sum() > 0


def test_incremental_saturation_checks_reset_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-epoch saturation checks read only the cells programmed since the layer's last check.
    Against the same run with every check reading whole arrays: the same records, and pulses,
    resets and accuracy per epoch within statistical tolerances (the read-noise draws differ, so
    the trajectories do: 15 % of the pulses, 30 % (at least 5) of the resets, 15 pp of accuracy on
    120 images, about 3 standard errors of a difference)."""
    data_dir = str(write_tiny_mnist(tmp_path / "mnist", 120, 40))
    partial_reads = {"n": 0}
    original = ArrayNetwork.hot_pairs

    def counting(self: ArrayNetwork, *args: Any) -> Any:
        if len(args) > 5 and args[5] is not None:
            partial_reads["n"] += 1
        return original(self, *args)

    monkeypatch.setattr(ArrayNetwork, "hot_pairs", counting)
    incremental = _epochs(tmp_path, "incremental", data_dir)
    assert partial_reads["n"] > 10  # the incremental path ran
    monkeypatch.setattr(devices, "_INCREMENTAL_MOST", -1.0)  # every check reads whole arrays
    partial_reads["n"] = 0
    full = _epochs(tmp_path, "full", data_dir)
    assert partial_reads["n"] == 0
    assert list(incremental.columns) == list(full.columns)
    assert list(incremental["phase"]) == list(full["phase"])
    for (_, a), (_, b) in zip(incremental.iterrows(), full.iterrows(), strict=True):
        assert abs(a["pulses"] - b["pulses"]) <= 0.15 * max(b["pulses"], 1), a["epoch"]
        assert abs(a["resets"] - b["resets"]) <= max(5, 0.3 * b["resets"]), a["epoch"]
        assert abs(a["train_accuracy"] - b["train_accuracy"]) <= 15.0, a["epoch"]
    assert full["resets"].sum() > 20  # resets happen, so the comparison means something
