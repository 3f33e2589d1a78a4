"""Preset fitting: the twin's device-preset parameters fitted from measured runs (store only, no
twin); the ``rram-hil calibrate`` command.

:func:`fit_preset` analyses every run (:mod:`protocols.analysis.extract`) and turns the extracted quantities
into values of the twin's :class:`~sim_backend.preset.DevicePreset` fields. The result is a plain
mapping; ``rram-hil calibrate`` validates it against the preset model and writes the YAML file,
which any twin station then loads (``twin: {preset: FILE.yaml}``).

What is fitted, and from which runs:

=============================  =====================================================================
field                          source
=============================  =====================================================================
``g_min_S``, ``g_max_S``       Gmin and Gmax of every array of the cycling runs (potentiation-
``area_exponent``              cycling, pulse-response, area-scaling), fitted jointly as
                               ``G = G_ref (area / area_ref) ** area_exponent`` (one exponent, two
                               prefactors); with a single device area the exponent is not
                               measured and the base preset's is kept.
``n_states``                   ``n`` of the potentiation fits (pulses from Gmin to Gmax), mean over
                               the arrays whose branch saturated.
``nonlinearity_potentiation``  ``nu`` of those fits; ``nonlinearity_depression`` from the
                               depression branches of pulse-response / area-scaling.
``set_reference_V``,           the potentiation pulse of the runs (one nominal step is that pulse);
``reference_width_s``          ``reset_reference_V`` is set so that the depression pulse makes the
                               measured number of depression steps (``n_states / n_depression``).
``c2c_sigma_over_mu``          ``sigma_over_mu``, device-weighted mean.
``d2d_sigma``,                 from saturated plateaus (pulse-response, area-scaling), weighted by
``d2d_range_sigma``            devices; from fitted curves only when no plateau was measured.
``read_noise_rel``             spread of repeated plateau readings.
``stuck_fraction``             devices that did not switch.
``retention_tau_s``            retention runs (geometric mean).
``forming_free``,              forming runs: not forming-free, the mean forming voltage, and the
``forming_voltage_V``,         pristine conductance relative to Gmin.
``pristine_conductance_ratio``
``set_threshold_V``,           threshold-search runs of either polarity.
``reset_threshold_V``
``read_reference_V``           the read voltage of the cycling runs.
=============================  =====================================================================

Every other field keeps the base preset's value. ``voltage_acceleration_V`` and
``width_exponent`` (how the step depends on amplitude and width) need runs at several amplitudes
and widths, which the cycling protocols do not make: they are kept from the base.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil.store import Store
from protocols.analysis.extract import (
    Analysis,
    Analyzer,
    analyze,
    analyze_cycling,
    analyze_forming,
    analyze_retention,
    analyze_threshold,
    analyzer_of,
    device_areas,
)


def _analysed_by(analysis: Analysis, analyzer: Analyzer) -> bool:
    """Whether the run's protocol names ``analyzer`` as its analysis (the run measured what it
    extracts: cycling, retention, forming, thresholds)."""
    return analyzer_of(analysis.protocol) is analyzer


@dataclass
class PresetFit:
    """Fitted preset values, where each came from, and the analyses behind them."""

    values: dict[str, Any]
    sources: dict[str, str]
    analyses: list[Analysis] = field(default_factory=list)

    def preset(self, base: Mapping[str, Any], name: str, description: str = "") -> dict[str, Any]:
        """A complete preset mapping: ``base`` with the fitted values (and thresholds kept consistent)."""
        merged = {**dict(base), **self.values, "name": name}
        merged["description"] = description or f"Calibrated by rram-hil from runs {self.run_list()}."
        merged["source"] = "rram-hil calibrate, " + "; ".join(f"{k}: {v}" for k, v in self.sources.items())
        for polarity in ("set", "reset"):
            ref, thr = f"{polarity}_reference_V", f"{polarity}_threshold_V"
            if merged.get(thr) is not None and merged.get(ref) is not None and merged[thr] > merged[ref]:
                merged[thr] = merged[ref]  # switching was seen at the reference pulse
        return merged

    def run_list(self) -> str:
        return ", ".join(str(a.run_id) for a in self.analyses)


def _weighted(values: Sequence[float], weights: Sequence[float]) -> float | None:
    v = np.asarray(values, dtype=float)
    w = np.asarray(weights, dtype=float)
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    if not ok.any():
        return None
    return float(np.sum(v[ok] * w[ok]) / np.sum(w[ok]))


def fit_area_scaling(
    areas_m2: np.ndarray, g_min_S: np.ndarray, g_max_S: np.ndarray, reference_area_m2: float
) -> tuple[float, float, float]:
    """``(area_exponent, g_min_ref, g_max_ref)`` of ``G = G_ref (A / A_ref) ** exponent`` fitted to
    both bounds with one shared exponent (least squares in log-log)."""
    x = np.log(np.asarray(areas_m2, dtype=float) / reference_area_m2)
    y1 = np.log(np.asarray(g_min_S, dtype=float))
    y2 = np.log(np.asarray(g_max_S, dtype=float))
    xc1, xc2 = x - x.mean(), x - x.mean()
    slope = float((np.sum(xc1 * (y1 - y1.mean())) + np.sum(xc2 * (y2 - y2.mean()))) / (2 * np.sum(xc1 * xc1)))
    g_min_ref = math.exp(float(np.mean(y1 - slope * x)))
    g_max_ref = math.exp(float(np.mean(y2 - slope * x)))
    return slope, g_min_ref, g_max_ref


def fit_preset(
    store: Store,
    run_ids: Sequence[int],
    base: Mapping[str, Any],
) -> PresetFit:
    """Fit preset values from the runs ``run_ids`` (see the module docstring).

    ``base`` is the preset the fit starts from (its reference diameter, area exponent,
    voltage acceleration and width exponent are used where the runs do not measure them).

    Raises:
        ValueError: no run from which the conductance range can be fitted.
    """
    analyses = [analyze(store, r) for r in run_ids]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ref_d = float(base.get("reference_diameter_m", 1e-6))
    ref_area = math.pi * (ref_d / 2) ** 2

    rows: list[dict[str, Any]] = []
    cycling = [a for a in analyses if _analysed_by(a, analyze_cycling)]
    for a in cycling:
        table = a.tables.get("per_array")
        if table is not None:
            rows.extend(table.to_dict("records"))
    if not rows:
        raise ValueError(
            "calibrate: no potentiation-cycling, pulse-response or area-scaling run among "
            f"{', '.join(map(str, run_ids))}; the conductance range cannot be fitted"
        )
    per_run_cycling = {a.run_id: a for a in cycling}
    cyc_ids = ", ".join(map(str, per_run_cycling))

    # --- range and its area scaling
    areas = np.array([r["area_m2"] for r in rows], dtype=float)
    g_lo = np.array([r["g_min_S"] for r in rows], dtype=float)
    g_hi = np.array([r["g_max_S"] for r in rows], dtype=float)
    ok = np.isfinite(areas) & (g_lo > 0) & (g_hi > g_lo)
    if np.unique(areas[ok]).size >= 2:
        exponent, g_min_ref, g_max_ref = fit_area_scaling(areas[ok], g_lo[ok], g_hi[ok], ref_area)
        values["area_exponent"] = exponent
        sources["area_exponent"] = (
            f"log-log fit over {np.unique(areas[ok]).size} device areas (runs {cyc_ids})"
        )
    else:
        exponent = float(base.get("area_exponent", 1.0))
        scale = (areas[ok] / ref_area) ** exponent
        g_min_ref = float(np.mean(g_lo[ok] / scale))
        g_max_ref = float(np.mean(g_hi[ok] / scale))
    values["g_min_S"], values["g_max_S"] = g_min_ref, g_max_ref
    sources["g_min_S"] = sources["g_max_S"] = f"bounds at {ref_d:g} m diameter (runs {cyc_ids})"

    # --- states and nonlinearity (saturated fits only, when there are any)
    fits = [
        (a.fits["potentiation"], a.summary.get("n_devices") or 1, a)
        for a in per_run_cycling.values()
        if "potentiation" in a.fits
    ]
    sat = [f for f in fits if f[0].saturated] or fits
    n_states = _weighted([f[0].n for f in sat], [f[1] for f in sat])
    if n_states is not None:
        values["n_states"] = max(2, int(round(n_states)))
        sources["n_states"] = f"pulses from Gmin to Gmax, {len(sat)} fit(s)"
        nu_p = _weighted([f[0].nu for f in sat], [f[1] for f in sat])
        if nu_p is not None:
            values["nonlinearity_potentiation"] = nu_p
            sources["nonlinearity_potentiation"] = "nu of the potentiation fits"
    dep_fits = [
        (a.fits["depression"], a.summary.get("n_devices") or 1, a)
        for a in per_run_cycling.values()
        if "depression" in a.fits and a.fits["depression"].saturated
    ]
    nu_d = _weighted([f[0].nu for f in dep_fits], [f[1] for f in dep_fits])
    if nu_d is not None:
        values["nonlinearity_depression"] = nu_d
        sources["nonlinearity_depression"] = "nu of the depression fits"

    # --- the pulse that is one nominal step, and the read voltage
    ref_run = max(per_run_cycling.values(), key=lambda a: a.summary.get("n_devices") or 0)
    p = store.run(ref_run.run_id).parameters
    if "amplitude_V" in p and "width_s" in p:
        values["set_reference_V"] = float(p["amplitude_V"])
        values["reference_width_s"] = float(p["width_s"])
        sources["set_reference_V"] = f"potentiation pulse of run {ref_run.run_id}"
    if "read_voltage_V" in p:
        values["read_reference_V"] = float(p["read_voltage_V"])
    if dep_fits and n_states is not None and "depression_amplitude_V" in p:
        n_dep = _weighted([f[0].n for f in dep_fits], [f[1] for f in dep_fits])
        v_acc = float(base.get("voltage_acceleration_V", 0.5))
        w_exp = float(base.get("width_exponent", 0.5))
        w_ref = float(values.get("reference_width_s", base.get("reference_width_s", 1e-4)))
        w_dep = float(p.get("depression_width_s", w_ref))
        if n_dep:
            steps_per_pulse = values["n_states"] / n_dep
            v_ref = abs(float(p["depression_amplitude_V"])) - v_acc * (
                math.log(steps_per_pulse) - w_exp * math.log(w_dep / w_ref)
            )
            values["reset_reference_V"] = v_ref
            sources["reset_reference_V"] = f"depression pulse makes n_states/{n_dep:.1f} steps"

    # --- variability
    weights = [a.summary.get("n_devices") or 0 for a in per_run_cycling.values()]
    c2c = _weighted(
        [a.summary.get("sigma_over_mu") or float("nan") for a in per_run_cycling.values()], weights
    )
    if c2c is not None:
        values["c2c_sigma_over_mu"] = c2c
        sources["c2c_sigma_over_mu"] = "sigma/mu of the potentiation steps"
    plateau = [
        a for a in per_run_cycling.values()
        if (pd := a.tables.get("per_device")) is not None and "bounds_from" in pd and (pd["bounds_from"] == "plateau").any()
    ]  # fmt: skip
    d2d_runs = plateau or list(per_run_cycling.values())
    d2d_w = [a.summary.get("n_devices") or 0 for a in d2d_runs]
    for key in ("d2d_sigma", "d2d_range_sigma"):
        # average variances, not standard deviations
        var = _weighted([(a.summary.get(key) or float("nan")) ** 2 for a in d2d_runs], d2d_w)
        if var is not None:
            values[key] = math.sqrt(var)
            sources[key] = "plateaus" if plateau else "fitted curves (upper bound: includes fit noise)"
    rn = _weighted([a.summary.get("read_noise_rel") or float("nan") for a in d2d_runs], d2d_w)
    if rn is not None:
        values["read_noise_rel"] = rn
        sources["read_noise_rel"] = "repeated plateau reads"
    stuck = _weighted([a.summary.get("stuck_fraction") or 0.0 for a in per_run_cycling.values()], weights)
    if stuck is not None:
        values["stuck_fraction"] = stuck
        sources["stuck_fraction"] = "devices that did not switch"

    # --- retention, forming, thresholds
    taus = [
        a.summary["retention_tau_s"]
        for a in analyses
        if _analysed_by(a, analyze_retention) and a.summary.get("retention_tau_s")
    ]
    if taus:
        values["retention_tau_s"] = float(np.exp(np.mean(np.log(taus))))
        sources["retention_tau_s"] = f"{len(taus)} retention run(s)"
    forming = [a for a in analyses if _analysed_by(a, analyze_forming) and a.summary.get("forming_voltage_V")]
    if forming:
        values["forming_free"] = False
        values["forming_voltage_V"] = float(np.mean([a.summary["forming_voltage_V"] for a in forming]))
        sources["forming_voltage_V"] = f"{len(forming)} forming run(s)"
        pristine = []
        for a in forming:
            df = store.readings_df(a.run_id)
            before = df[(df["kind"] == "readout") & (df["step"] == 0)]["conductance_S"]
            area = _device_area(store, a.run_id, ref_area)
            g_min_here = g_min_ref * (area / ref_area) ** exponent
            if len(before):
                pristine.append(float(before.mean()) / g_min_here)
        if pristine:
            values["pristine_conductance_ratio"] = float(min(1.0, np.mean(pristine)))
    for a in analyses:
        if _analysed_by(a, analyze_threshold) and a.summary.get("threshold_V") is not None:
            polarity = store.run(a.run_id).parameters.get("polarity", "set")
            key = "set_threshold_V" if polarity == "set" else "reset_threshold_V"
            values[key] = abs(float(a.summary["threshold_V"]))
            sources[key] = f"threshold-search run {a.run_id}"
    return PresetFit(values, sources, analyses)


def _device_area(store: Store, run_id: int, default_m2: float) -> float:
    """Device area (m^2) of the array the run's ``array`` parameter names (without one: of the
    station's first array), from the station model; ``default_m2`` if the station has no such array."""
    info = store.run(run_id)
    array = info.parameters.get("array")
    areas = device_areas(info)
    if array is not None:
        return areas.get(array, default_m2)
    return next(iter(areas.values()), default_m2)
