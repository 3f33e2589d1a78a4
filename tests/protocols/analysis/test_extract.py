"""Extraction: closed-form checks on synthetic runs with known parameters, then on twin runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hil.store import Store
from protocols.analysis.extract import REQUIRED_KEYS, analyze, curves, heatmap
from tests.helpers import new_store, run, twin_station

GMIN, SPAN, N_STATES, SIGMA = 4e-6, 36e-6, 40, 0.3


def synthetic_cycling(
    n_dev: int = 24, n_cycles: int = 10, n_pulses: int = 60, seed: int = 0
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Linear devices: each pulse adds SPAN_d / N_STATES * (1 + SIGMA z), clipped at Gmax_d."""
    rng = np.random.default_rng(seed)
    g_lo = GMIN * (1 + 0.05 * rng.standard_normal(n_dev))
    span = SPAN * (1 + 0.04 * rng.standard_normal(n_dev))
    steps = (1 + SIGMA * rng.standard_normal((n_dev, n_cycles, n_pulses))) / N_STATES
    x = np.minimum(np.cumsum(steps, axis=2), 1.0)
    # clipping is not a cumulative sum: walk it
    x = np.empty_like(steps)
    state = np.zeros((n_dev, n_cycles))
    for k in range(n_pulses):
        state = np.clip(state + steps[:, :, k], 0.0, 1.0)
        x[:, :, k] = state
    g = g_lo[:, None, None] + span[:, None, None] * x
    dev, cyc, pul = np.meshgrid(np.arange(n_dev), np.arange(n_cycles), np.arange(n_pulses), indexing="ij")
    df = pd.DataFrame(
        {
            "kind": "potentiation",
            "array": "A",
            "row": dev.ravel() // 8,
            "col": dev.ravel() % 8,
            "cycle": cyc.ravel(),
            "pulse": pul.ravel(),
            "conductance_S": g.ravel(),
            "voltage_V": 0.5,
            "current_A": g.ravel() * 0.5,
            "t_s": np.arange(g.size) * 1e-4,
        }
    )
    return df.sample(frac=1.0, random_state=1).reset_index(drop=True), g_lo, span


def store_synthetic(
    tmp_path: Path, df: pd.DataFrame, protocol: str = "potentiation-cycling"
) -> tuple[Store, int]:
    store = new_store(tmp_path)
    station = twin_station().snapshot()
    run_id = store.create_run(protocol, {"array": "A"}, station, "twin")
    cols = {c: df[c].to_numpy() for c in df.columns}
    cols["seq"] = np.arange(len(df))
    cols["run_id"] = run_id
    store.add_readings(cols)
    store.finish_run(run_id, "completed")
    return store, run_id


def test_curves_places_every_reading() -> None:
    df, _, _ = synthetic_cycling(n_dev=5, n_cycles=3, n_pulses=7)
    c = curves(df, "potentiation")
    assert c.g.shape == (5, 3, 7)
    for rec in df.sample(20, random_state=2).itertuples():
        dev = int(np.flatnonzero((c.devices["row"] == rec.row) & (c.devices["col"] == rec.col))[0])
        assert c.g[dev, rec.cycle, rec.pulse] == rec.conductance_S


def test_extraction_recovers_known_parameters(tmp_path: Path) -> None:
    df, g_lo, span = synthetic_cycling()
    store, run_id = store_synthetic(tmp_path, df)
    result = analyze(store, run_id)
    s = result.summary
    assert s["n_states"] == pytest.approx(N_STATES, rel=0.05)
    assert s["nonlinearity"] == pytest.approx(0.0, abs=0.15)
    assert s["g_min_S"] == pytest.approx(g_lo.mean(), rel=0.02)
    assert s["g_max_S"] == pytest.approx((g_lo + span).mean(), rel=0.02)
    assert s["on_off_ratio"] == pytest.approx(s["g_max_S"] / s["g_min_S"])
    assert s["step_mean_S"] == pytest.approx(span.mean() / N_STATES, rel=0.05)
    assert s["sigma_over_mu"] == pytest.approx(SIGMA, rel=0.08)
    assert s["saturated"] is True
    assert s["n_devices"] == 24 and s["n_cycles"] == 10
    per_device = result.tables["per_device"]
    assert len(per_device) == 24 and not per_device["stuck"].any()
    payload = result.to_json()
    assert set(REQUIRED_KEYS) <= set(payload)
    json.dumps(payload, allow_nan=False)


def test_stuck_devices_are_excluded_and_counted(tmp_path: Path) -> None:
    df, _, _ = synthetic_cycling(n_dev=20)
    stuck = (df["row"] == 0) & (df["col"] == 3)
    df.loc[stuck, "conductance_S"] = 30e-6
    store, run_id = store_synthetic(tmp_path, df)
    s = analyze(store, run_id).summary
    assert s["stuck_fraction"] == pytest.approx(1 / 20)
    assert s["sigma_over_mu"] == pytest.approx(SIGMA, rel=0.1)


def test_heatmap_is_a_cumulative_distribution() -> None:
    df, _, _ = synthetic_cycling(n_dev=10, n_cycles=5)
    heat = heatmap(curves(df, "potentiation").g)
    values = heat.to_numpy()
    filled = ~np.isnan(values).all(axis=0)
    assert filled.sum() >= 10
    assert np.all(np.diff(values[:, filled], axis=0) >= -1e-12)
    assert np.allclose(values[-1, filled], 1.0)


def test_pulse_response_on_the_twin_matches_its_preset(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(store, "pulse-response", twin_station(), cells="0:4,0:4", cycles=3, pulses=80)
    s = analyze(store, outcome.run_id).summary
    # the shipped preset: Gmin 5 uS, Gmax 50 uS at 1 um, 50 states, nu 0.5 / 2, sigma/mu 0.34
    assert s["g_min_S"] == pytest.approx(5e-6, rel=0.05)
    assert s["g_max_S"] == pytest.approx(50e-6, rel=0.03)
    assert s["n_states"] == pytest.approx(50, rel=0.05)
    assert s["step_mean_S"] == pytest.approx(45e-6 / 50, rel=0.07)
    assert s["nonlinearity"] == pytest.approx(0.5, abs=0.2)
    assert s["nonlinearity_depression"] == pytest.approx(2.0, abs=0.3)
    assert s["sigma_over_mu"] == pytest.approx(0.34, rel=0.12)
    assert s["read_noise_rel"] == pytest.approx(0.002, rel=0.2)


def test_area_scaling_slopes_are_one_on_the_twin(tmp_path: Path) -> None:
    store = new_store(tmp_path)
    outcome = run(
        store, "area-scaling", twin_station(), diameters_nm="30,300,1000", rows=2, cols=2, cycles=2, pulses=70
    )
    result = analyze(store, outcome.run_id)
    s = result.summary
    assert s["area_slope_range"] == pytest.approx(1.0, abs=0.03)
    assert s["area_slope_step"] == pytest.approx(1.0, abs=0.08)
    table = result.tables["per_array"]
    assert list(table["array"]) == ["D30nm", "D300nm", "D1000nm"]
    assert table["area_m2"].iloc[0] == pytest.approx(math.pi * (15e-9) ** 2)
    payload = result.to_json()
    assert {"area_slope_range", "area_slope_step"} <= set(payload) and len(payload["per_array"]) == 3
