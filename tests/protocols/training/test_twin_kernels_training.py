"""A short hybrid-training run on the twin's compiled kernels against the same run on their numpy
references (:func:`sim_backend.kernels.use_reference`): the same records per epoch, and pulses,
resets and accuracies that agree within stated tolerances.

Both runs draw the same random streams (the kernels take their Gaussian draws from the arrays'
streams in the same order), so they differ only by floating-point rounding, which can flip a
rounded pulse count now and then; the tolerances allow for that drift and no more: 2 % of the
pulses, 10 % (at least 3) of the resets, 5 percentage points of accuracy on 40 images.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hil.station import load_station
from hil.store import Store
from hil.store.training import epochs_df
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
