"""Calibrate the twin against a device whose parameters the fit does not know, and print how well
each parameter comes back (the proof of tests/test_calibrate.py, with its numbers shown).

1. A "device under test": a twin station whose preset overrides (HIDDEN) the fit never sees.
2. It is measured like a real device: area-scaling (pulse response on 1 um, 300 nm and 100 nm
   devices) and retention, into a SQLite store.
3. `protocols.analysis.preset_fit.fit_preset` fits a preset from those runs alone; it is written as YAML and
   loaded back (what `rram-hil calibrate RUN ... -o PRESET.yaml` does).
4. Held-out check: potentiation cycling (Fig. 3E scheme, 10 x 50 pulses) on devices that were not
   measured, on the device under test and on a twin built from the fitted preset (other seed);
   the RMS of the relative difference of their mean curves.

    python examples/calibrate_hidden_twin.py [--db calibration.sqlite]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from hil.cli.analysis import write_preset
from hil.engine import RunEngine
from hil.station import Station, parse_station
from hil.store import Store
from protocols.analysis.preset_fit import fit_preset
from sim_backend.preset import load_preset

HIDDEN: dict[str, Any] = {
    "g_min_S": 3.1e-6,
    "g_max_S": 41e-6,
    "area_exponent": 0.9,
    "n_states": 37,
    "nonlinearity_potentiation": 1.3,
    "nonlinearity_depression": 2.5,
    "c2c_sigma_over_mu": 0.22,
    "d2d_sigma": 0.08,
    "d2d_range_sigma": 0.06,
    "read_noise_rel": 0.003,
    "retention_tau_s": 3e6,
}
ARRAYS = [
    {"name": "A", "rows": 24, "cols": 24, "diameter_m": 1e-6},
    {"name": "M", "rows": 4, "cols": 4, "diameter_m": 300e-9},
    {"name": "S", "rows": 4, "cols": 4, "diameter_m": 100e-9},
    {"name": "H", "rows": 4, "cols": 4, "diameter_m": 1e-6},
]


def station(preset: str, overrides: dict[str, Any], seed: int) -> Station:
    return parse_station(
        {
            "name": "calibration",
            "backend": "twin",
            "twin": {"preset": preset, "overrides": overrides, "seed": seed},
            "arrays": ARRAYS,
        }
    )


def held_out_curve(store: Store, st: Station) -> np.ndarray:
    outcome = RunEngine(store).run(
        "potentiation-cycling", st, {"array": "H", "cells": "all", "cycles": 10, "pulses": 50}, plot=False
    )
    df = store.readings_df(outcome.run_id)
    return df[df["kind"] == "potentiation"].groupby("pulse")["conductance_S"].mean().to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="SQLite file (default: a temporary one)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    store = Store(args.db or tmp / "calibration.sqlite")
    device = station("mo_tiox_choi2021", HIDDEN, seed=11)
    engine = RunEngine(store)
    runs = [
        engine.run(
            "area-scaling", device, {"arrays": "A,M,S", "cells": "all", "cycles": 3, "pulses": 60}, plot=False
        ),
        engine.run(
            "retention", device, {"array": "A", "cells": "0:4,0:4", "t_last_s": 1e8, "points": 30}, plot=False
        ),
    ]
    base = load_preset("mo_tiox_choi2021")
    result = fit_preset(store, [r.run_id for r in runs], base.model_dump())
    path = tmp / "fitted.yaml"
    fitted = write_preset(result.preset(base.model_dump(), "fitted"), path, result.sources)

    print(f"runs {', '.join(str(r.run_id) for r in runs)} in {store.url}; preset written to {path}")
    print(f"{'parameter':28s} {'hidden':>11s} {'fitted':>11s} {'error':>8s}")
    worst = 0.0
    for key, truth in HIDDEN.items():
        value = getattr(fitted, key)
        error = (value - truth) / truth
        worst = max(worst, abs(error))
        print(f"{key:28s} {truth:11.4g} {value:11.4g} {error:+8.2%}")
    truth_preset = base.with_overrides(**HIDDEN)
    for d in (1e-6, 100e-9, 30e-9):
        area = math.pi * (d / 2) ** 2
        error = fitted.step_S(area) / truth_preset.step_S(area) - 1
        worst = max(worst, abs(error))
        print(
            f"{f'step per pulse at {d * 1e9:g} nm':28s} {truth_preset.step_S(area):11.4g} {fitted.step_S(area):11.4g} {error:+8.2%}"
        )

    measured = held_out_curve(store, device)
    model = held_out_curve(store, station(str(path), {}, seed=99))
    uncalibrated = held_out_curve(store, station("mo_tiox_choi2021", {}, seed=99))
    rms = float(np.sqrt(np.mean(((model - measured) / measured) ** 2)))
    rms_base = float(np.sqrt(np.mean(((uncalibrated - measured) / measured) ** 2)))
    print(f"held-out potentiation curves (10 x 50 pulses, 16 unmeasured devices): {rms:.2%} RMS "
          f"(uncalibrated base preset: {rms_base:.1%})")  # fmt: skip
    print(f"calibration_worst_parameter_error: {worst * 100:.1f} %")


if __name__ == "__main__":
    main()
