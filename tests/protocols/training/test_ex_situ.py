"""Ex-situ transfer: the weight scale fitted to the trained network, and the transfer's error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hil.station import load_station
from hil.store import Store
from hil.store.training import epochs_df
from protocols.training.ex_situ import fitted_w_max
from tests.helpers import run as run_protocol
from tests.helpers import write_tiny_mnist

SMALL = {"hidden": [8], "train_limit": 120, "test_limit": 40, "eval_batch": 40, "epochs": 3}


def transfer(tmp_path: Path, **params: Any) -> tuple[list[dict[str, float]], Any]:
    data = write_tiny_mnist(tmp_path / "mnist", 120, 40)
    with Store(tmp_path / "t.sqlite") as store:
        every = {**SMALL, "mode": "ex-situ", "synapse": "hybrid", "data_dir": str(data), **params}
        run_id = run_protocol(store, "hybrid-training", load_station(None), **every).run_id
        events = store.events_df(run_id)
        (detail,) = events.loc[events["kind"] == "transferred", "detail"]
        return detail, epochs_df(store, run_id)


def test_the_fitted_scale_is_each_layers_largest_weight():
    w = [np.array([[0.1, -2.5], [0.3, 0.0]]), np.array([[4.0], [-1.0]])]
    assert fitted_w_max(w) == [2.5, 4.0]


def test_a_fitted_scale_clips_almost_nothing_and_transfers_to_a_small_error(tmp_path: Path):
    detail, ep = transfer(tmp_path)
    assert detail["transfer_scale"] == "fit"
    for layer in detail["layers"]:
        # only the largest weights on cells whose window is below the median can fall short
        assert layer["clipped_fraction"] < 0.005
        assert layer["rms_error"] < 0.05 * layer["rms_weight"]
    assert list(ep["phase"])[-1] == "ex-situ"


def test_a_window_smaller_than_the_weights_clips_and_the_error_shows_it(tmp_path: Path):
    fitted, _ = transfer(tmp_path / "fit")
    clipped, _ = transfer(tmp_path / "small", transfer_scale="w_max", w_max=[0.02, 0.05])
    assert clipped["w_max"] == [0.02, 0.05]
    assert clipped["layers"][0]["clipped_fraction"] > 0.05
    assert clipped["layers"][0]["rms_error"] > 3 * fitted["layers"][0]["rms_error"]


def test_an_unknown_transfer_scale_is_refused_by_name(tmp_path: Path):
    from hil.errors import ConfigError

    with pytest.raises(ConfigError, match="transfer_scale"):
        transfer(tmp_path, transfer_scale="auto")
