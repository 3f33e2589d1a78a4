"""Stuck cells: detected, reported (count and cells, JSON-able), left out of the range and spread
figures; figures that cannot be computed are None; map plots scaled to the population."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hil.station import Station
from protocols.analysis.extract import analyze, outlier_cells
from protocols.conductance_map import ConductanceMap
from sim_backend.station_twin import twin_from_station
from tests.helpers import IDEAL, new_store, run, twin_station

#: the built-in twin's array A: 32 x 32 devices of 1 um, preset d2d_sigma 0.05
BIG_A: list[dict[str, Any]] = [{"name": "A", "rows": 32, "cols": 32, "diameter_m": 1e-6}]


def stuck_mask(station: Station, array: str = "A") -> np.ndarray:
    """The cells the station's twin fabricated stuck (what the analysis must find)."""
    return np.asarray(twin_from_station(station)._models[array].stuck)


def test_one_stuck_cell_no_longer_sets_the_spread_of_a_map(tmp_path: Path) -> None:
    """The issue's case: one cell stuck at Gmax in a map of 1,024 reset devices gave d2d_sigma
    0.28 against the preset's 0.05."""
    station = twin_station(arrays=BIG_A, seed=0)
    mask = stuck_mask(station)
    assert [tuple(rc) for rc in np.argwhere(mask)] == [(9, 29)]  # exactly one stuck cell, at Gmax
    store = new_store(tmp_path)
    outcome = run(store, "conductance-map", station)
    result = analyze(store, outcome.run_id)
    s = result.summary
    assert s["d2d_sigma"] == pytest.approx(0.05, abs=0.004)  # the preset's spread
    assert s["stuck_cells"] == 1 and s["excluded"] == 1 and s["stuck_list"] == "A(9,29)"
    assert s["stuck_fraction"] == pytest.approx(1 / 1024)
    assert s["n_devices"] == 1024
    assert s["g_max_S"] < 8e-6  # the population's top (Gmin 5 uS + spread), not the stuck 50 uS
    # before: the same figure over every cell, the stuck one included
    g = result.tables["per_device"]["conductance_S"].to_numpy()
    assert g.std() / g.mean() == pytest.approx(0.28, abs=0.01)
    payload = result.to_json()
    assert payload["stuck"] == [
        {"array": "A", "row": 9, "col": 29, "conductance_S": pytest.approx(49.6e-6, rel=0.02)}
    ]
    json.dumps(payload, allow_nan=False)


def test_every_cell_stuck_at_gmax_is_found_in_a_map(tmp_path: Path) -> None:
    arrays = [{**BIG_A[0], "overrides": {"stuck_fraction": 0.03, "stuck_on_fraction": 1.0}}]
    station = twin_station(arrays=arrays, seed=2)
    mask = stuck_mask(station)
    assert 10 <= mask.sum() <= 60
    store = new_store(tmp_path)
    result = analyze(store, run(store, "conductance-map", station).run_id)
    found = {
        (int(r), int(c))
        for r, c in zip(result.tables["stuck"]["row"], result.tables["stuck"]["col"], strict=True)
    }
    assert found == {tuple(map(int, rc)) for rc in np.argwhere(mask)}
    assert result.summary["stuck_cells"] == result.summary["excluded"] == int(mask.sum())
    assert result.summary["d2d_sigma"] == pytest.approx(0.05, abs=0.005)


def test_a_map_of_identical_devices_flags_nothing(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    result = analyze(store, run(store, "conductance-map", twin_station(IDEAL)).run_id)
    assert result.summary["stuck_cells"] == 0 and result.summary["stuck_list"] == ""
    assert result.summary["d2d_sigma"] == pytest.approx(0.0, abs=1e-12)  # 64 devices: a spread, 0


def test_a_second_population_is_not_stuck() -> None:
    """Programmed cells (a fifth of the array at Gmax) are a population, not outliers."""
    rng = np.random.default_rng(0)
    g = 5e-6 * (1 + 0.05 * rng.standard_normal(1000))
    g[:200] *= 10
    assert not outlier_cells(g).any()
    g[:200] /= 10
    g[3] = 50e-6
    assert list(np.flatnonzero(outlier_cells(g))) == [3]


def test_stuck_cells_of_a_cycling_run_are_reported_and_left_out(tmp_path: Path) -> None:
    arrays = [{"name": "A", "rows": 8, "cols": 8, "diameter_m": 1e-6,
               "overrides": {"stuck_fraction": 0.15, "stuck_on_fraction": 0.5}}]  # fmt: skip
    station = twin_station(arrays=arrays, seed=0)
    mask = stuck_mask(station)[:4, :4]
    assert mask.sum() == 3  # one at Gmax, two at Gmin
    store = new_store(tmp_path)
    outcome = run(store, "potentiation-cycling", station, cells="0:4,0:4", cycles=3, pulses=60)
    result = analyze(store, outcome.run_id)
    s = result.summary
    found = {
        (int(r), int(c))
        for r, c in zip(result.tables["stuck"]["row"], result.tables["stuck"]["col"], strict=True)
    }
    assert found == {tuple(map(int, rc)) for rc in np.argwhere(mask)}
    assert s["stuck_cells"] == s["excluded"] == int(mask.sum())
    assert s["stuck_fraction"] == pytest.approx(mask.mean())
    assert s["g_max_S"] == pytest.approx(50e-6, rel=0.1) and s["g_min_S"] == pytest.approx(5e-6, rel=0.1)
    per_device = result.tables["per_device"]
    kept = per_device[~per_device["stuck"]]["g_min_S"].to_numpy()
    every = per_device["g_min_S"].to_numpy()
    assert s["d2d_sigma"] == pytest.approx(kept.std() / kept.mean())
    assert every.std() / every.mean() > 3 * s["d2d_sigma"]  # the stuck-at-Gmax cell would dominate
    json.dumps(result.to_json(), allow_nan=False)


def test_a_single_device_has_no_spread(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    cycling = analyze(store, run(store, "potentiation-cycling", twin_station(), cycles=2, pulses=20).run_id)
    assert cycling.summary["d2d_sigma"] is None and cycling.summary["d2d_range_sigma"] is None
    assert cycling.to_json()["d2d_sigma"] is None
    assert cycling.summary["n_devices"] == 1 and cycling.summary["stuck_cells"] == 0
    path = tmp_path / "one.yaml"
    path.write_text("cells: '0,0'\nsteps:\n  - read: {}\n  - read: {}\n")
    reads = analyze(store, run(store, "sequence", twin_station(), program=str(path)).run_id)
    assert reads.summary["d2d_sigma"] is None and reads.summary["n_devices"] == 1
    assert "d2d_sigma" not in set(reads.summary_df()["quantity"])


def test_the_map_plot_is_scaled_to_the_population_and_marks_stuck_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.axes

    store = new_store(tmp_path)
    run_id = run(store, "conductance-map", twin_station(arrays=BIG_A, seed=0)).run_id
    seen: dict[str, Any] = {}
    imshow = matplotlib.axes.Axes.imshow

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return imshow(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "imshow", spy)
    path = ConductanceMap().plot(store, run_id, tmp_path / "map.png")
    assert path is not None and path.stat().st_size > 10_000
    assert 4.0 < seen["vmin"] < seen["vmax"] < 6.5  # uS: the population's 1st-99th percentiles, not 50
