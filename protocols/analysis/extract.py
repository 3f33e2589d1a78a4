"""Extraction: device parameters from the runs in the store (pure data analysis, no twin).

:func:`analyze` reads one run and returns an :class:`Analysis`: a flat ``summary`` (the JSON keys
of ``rram-hil analyze --json``) and named pandas ``tables`` (per device, per array, the Fig. 3F heat
map, mean curves, ...). Which analysis a run gets is up to its protocol: the protocol class names
it (its ``analysis`` attribute, one of the ``analyze_*`` functions here, an :data:`Analyzer`); a
protocol that names none gets conductance statistics (:func:`analyze_readings`). Definitions (S, s, V; ``G`` is the conductance read at the read voltage):

- ``g_min_S`` / ``g_max_S``: mean over working devices of each device's bounds. With a saturated
  branch (pulse-response, area-scaling) a bound is the median of the device's readings on the
  plateau after the fitted corner; otherwise it comes from the fitted potentiation curve.
- ``on_off_ratio``: ``g_max_S / g_min_S``.
- ``n_states``: pulses that take a device from Gmin to Gmax, the ``n`` of the fitted curve
  ``G_m = Gmin + (Gmax - Gmin) phi(m; nu, n)`` (:mod:`protocols.analysis.fitting`); for a linear device it
  equals ``(Gmax - Gmin) / step``. ``saturated`` is false when the corner lies beyond the measured
  pulses (``n_states`` and ``g_max_S`` are then extrapolated).
- ``step_mean_S``: mean step per pulse over the range, ``(g_max_S - g_min_S) / n_states``.
- ``nonlinearity``: ``nu`` of the potentiation fit (0: linear; larger: bigger steps first);
  ``nonlinearity_depression`` the same for depression.
- ``sigma_over_mu``: programming variability (Fig. 3E inset). Each step ``dG`` on the unsaturated
  part of potentiation (pulses 2 to 0.7 n) is divided by the mean step of that device at that pulse
  (mean over cycles), and ``sigma/mu`` is the standard deviation of the ratio (finite-cycle and
  read-noise contributions removed).
- ``d2d_sigma``: device-to-device spread, std / mean of the devices' Gmin (Choi's delta/Gmin);
  ``d2d_range_sigma``: the same for ``Gmax - Gmin``.
- ``read_noise_rel``: std / mean of repeated readings of a device on a saturated plateau.
- ``stuck_fraction``, ``stuck_cells``, ``stuck_list``, ``excluded``: stuck devices (see *Stuck
  cells* below): their fraction, their number, where they are (``"A(9,29) A(0,3)"``) and how many
  devices the range and spread figures leave out (``g_min_S``, ``g_max_S``, ``on_off_ratio``,
  ``d2d_sigma``, ``d2d_range_sigma``, ``sigma_over_mu``, the fits and ``g_median_S``); ``to_json``
  also lists them as ``stuck`` records (array, row, col, conductance).
- ``area_slope_range`` / ``area_slope_step``: log-log slopes of ``Gmax - Gmin`` and of the step
  against device area over the arrays of a run (Fig. 3D; about 1 for interfacial switching).
- ``retention_tau_s``: time constant of ``G(t) = G_base + (G_0 - G_base) exp(-t / tau)`` fitted to
  the mean over devices (``G_base``: the reset level read before programming).
- ``forming_voltage_V``: mean source voltage at which the devices formed.
- heat map (Fig. 3F): for each bin of ``G`` before a pulse, the cumulative probability that the
  step ``dG`` is at most each value.

Stuck cells (devices that do not switch) would otherwise set a population's range and spread on
their own (one cell stuck at Gmax in a 32 x 32 map of reset devices takes ``d2d_sigma`` from 0.05
to 0.28). Two detectors, each using what the run measured:

- programmed runs (cycling): a device whose range over the branch is below a fifth of the median
  range (:data:`STUCK_RANGE_FRACTION`) does not respond to pulses;
- conductance reads without programming (maps): a device whose ``ln G`` (median of its reads)
  lies more than :data:`STUCK_Z` robust standard deviations from the population's median, the
  robust standard deviation being ``1.4826 MAD`` of ``ln G`` and at least :data:`MIN_LOG_SIGMA`
  (identical devices flag nothing), is an outlier of the population, flagged as stuck while such
  outliers are at most :data:`MAX_OUTLIER_FRACTION` of the devices (more are a second population,
  e.g. programmed cells, and nothing is flagged). A map alone cannot tell a cell stuck inside the
  population's window (e.g. at Gmin in a map of reset devices) from a working one.

Figures that need more devices than remain (a spread of one device) are ``None``, never 0.

Keys a run does not measure are ``None`` (JSON ``null``); every summary has the keys in
:data:`REQUIRED_KEYS`.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from hil.protocol import ENTRY_POINT_GROUP
from hil.station import parse_station
from hil.store import RunInfo, Store
from protocols.analysis.fitting import BranchFit, fit_branch, fit_exponential_decay, loglog_slope, phi

REQUIRED_KEYS = (
    "g_min_S", "g_max_S", "on_off_ratio", "n_states", "step_mean_S", "sigma_over_mu", "nonlinearity",
)  # fmt: skip

#: unit and meaning of every summary key (the terminal table and the HTML report use them)
QUANTITIES: dict[str, tuple[str, str]] = {
    "g_min_S": ("S", "low-conductance bound Gmin (mean of devices)"),
    "g_max_S": ("S", "high-conductance bound Gmax (mean of devices)"),
    "on_off_ratio": ("", "Gmax / Gmin"),
    "n_states": ("", "pulses from Gmin to Gmax (distinguishable states)"),
    "step_mean_S": ("S", "mean conductance step per pulse, mu"),
    "sigma_over_mu": ("", "programming variability of the step, sigma/mu"),
    "nonlinearity": ("", "nu of the potentiation curve (0: linear)"),
    "nonlinearity_depression": ("", "nu of the depression curve"),
    "saturated": ("", "the branch reached its bound inside the measured pulses"),
    "d2d_sigma": ("", "device-to-device spread of Gmin, std/mean"),
    "d2d_range_sigma": ("", "device-to-device spread of Gmax - Gmin, std/mean"),
    "read_noise_rel": ("", "read noise, std/mean of repeated reads"),
    "stuck_fraction": ("", "fraction of devices that do not switch"),
    "stuck_cells": ("", "devices detected as stuck (excluded from range and spread)"),
    "stuck_list": ("", "the stuck devices, ARRAY(ROW,COL)"),
    "excluded": ("", "devices left out of the range and spread figures"),
    "n_devices": ("", "devices analysed"),
    "n_cycles": ("", "cycles analysed"),
    "fit_rms_S": ("S", "rms residual of the potentiation fit"),
    "area_slope_range": ("", "log-log slope of Gmax - Gmin against area"),
    "area_slope_step": ("", "log-log slope of the mean step against area"),
    "area_slope_gmin": ("", "log-log slope of Gmin against area"),
    "area_slope_read_current": ("", "log-log slope of the read-out current against area"),
    "retention_tau_s": ("s", "retention time constant"),
    "retention_g0_S": ("S", "conductance right after programming (mean)"),
    "retention_final_fraction": ("", "programmed conductance left at the last read"),
    "forming_voltage_V": ("V", "forming voltage (mean of formed devices)"),
    "forming_voltage_std_V": ("V", "device-to-device std of the forming voltage"),
    "formed_fraction": ("", "fraction of devices that formed"),
    "hysteresis_area_W": ("W", "area of the I-V loop, integral of I dV (mean)"),
    "ndr_peak_V": ("V", "voltage of the current peak before negative differential resistance"),
    "ndr_peak_A": ("A", "peak current"),
    "ndr_valley_V": ("V", "voltage of the current valley"),
    "peak_to_valley_ratio": ("", "peak current / valley current"),
    "threshold_V": ("V", "switching threshold (mean of devices)"),
    "threshold_std_V": ("V", "device-to-device std of the threshold"),
    "switched_fraction": ("", "fraction of devices that switched below the limit"),
    "converged_fraction": ("", "fraction of cells within tolerance"),
    "not_converged": ("", "cells outside the tolerance"),
    "final_error_rms_rel": ("", "rms of (G - target) / target after the last iteration"),
    "iterations_max": ("", "iterations the slowest cell needed"),
    "read_disturb_max_rel": ("", "largest |G - G0| / G0 over all checks"),
    "read_disturb_final_median_rel": ("", "median (G - G0) / G0 after the last block"),
    "read_disturb_reads": ("", "read-stress pulses applied per cell"),
    "endurance_cycles_median": ("", "median cycles to failure (failed devices)"),
    "failed_fraction": ("", "fraction of devices that failed"),
    "cycles_run": ("", "cycles run"),
    "g_median_S": ("S", "median conductance"),
    "readings": ("", "readings in the run"),
}


@dataclass
class Analysis:
    """Extracted parameters of one run: ``summary`` (flat, JSON-able) and ``tables`` (DataFrames)."""

    run_id: int
    protocol: str
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    fits: dict[str, BranchFit] = field(default_factory=dict)

    def summary_df(self) -> pd.DataFrame:
        """The summary as a table: quantity, value, unit, description (values not None)."""
        rows = []
        for key, value in self.summary.items():
            if value is None:
                continue
            unit, text = QUANTITIES.get(key, ("", ""))
            rows.append({"quantity": key, "value": value, "unit": unit, "description": text})
        table = pd.DataFrame(rows, columns=["quantity", "value", "unit", "description"])
        # values keep their own types (counts stay integers, flags booleans)
        table["value"] = pd.Series([r["value"] for r in rows], dtype=object)
        return table

    def to_json(self) -> dict[str, Any]:
        """``{"run_id", "protocol", <summary keys>, "per_array": [...] (area studies)}``; NaN -> None."""
        out: dict[str, Any] = {"run_id": self.run_id, "protocol": self.protocol}
        out.update({k: _plain(v) for k, v in self.summary.items()})
        for key in ("per_array", "stuck"):
            table = self.tables.get(key)
            if table is not None and not table.empty:
                out[key] = [{k: _plain(v) for k, v in row.items()} for row in table.to_dict("records")]
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def empty_summary() -> dict[str, Any]:
    return {k: None for k in REQUIRED_KEYS}


def _spread(values: np.ndarray) -> float | None:
    """std / mean of ``values`` (finite ones); ``None`` with fewer than two or a mean of 0."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size < 2 or v.mean() == 0:
        return None
    return _num(v.std() / v.mean())


# ---------------------------------------------------------------------- stuck cells
#: a cycled device whose range is below this fraction of the median range does not switch
STUCK_RANGE_FRACTION = 0.2
#: robust z-score of ln G beyond which a read device is an outlier of its population
STUCK_Z = 6.0
#: floor of the robust standard deviation of ln G (2 %): identical devices flag nothing
MIN_LOG_SIGMA = 0.02
#: outliers are stuck cells only while they are at most this fraction of the devices
MAX_OUTLIER_FRACTION = 0.1


def outlier_cells(g_S: np.ndarray) -> np.ndarray:
    """Mask of the devices whose conductance ``g_S`` (one value per device) lies far outside the
    population: ``|ln G - median| > STUCK_Z * max(1.4826 MAD, MIN_LOG_SIGMA)``; none when more than
    :data:`MAX_OUTLIER_FRACTION` of the devices would be flagged, or fewer than 3 devices.
    Non-positive or missing conductances are outliers."""
    g = np.asarray(g_S, dtype=float)
    bad = ~(np.isfinite(g) & (g > 0))
    if g.size < 3 or bad.all():
        return np.zeros(g.shape, dtype=bool)
    log_g = np.log(np.where(bad, 1.0, g))
    centre = float(np.median(log_g[~bad]))
    sigma = max(1.4826 * float(np.median(np.abs(log_g[~bad] - centre))), MIN_LOG_SIGMA)
    out = bad | (np.abs(log_g - centre) > STUCK_Z * sigma)
    if out.mean() > MAX_OUTLIER_FRACTION:
        return np.zeros(g.shape, dtype=bool)
    return out


def stuck_summary(
    devices: pd.DataFrame, stuck: np.ndarray, g_S: np.ndarray | None = None, excluded: int | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Summary keys (``stuck_fraction``, ``stuck_cells``, ``stuck_list``, ``excluded``: the devices
    left out, default all stuck ones) and the ``stuck`` table (array, row, col and, given ``g_S``,
    the device's conductance) of the devices flagged in ``stuck`` (one per row of ``devices``)."""
    table = devices.loc[stuck, ["array", "row", "col"]].reset_index(drop=True)
    table["array"] = table["array"].astype(str)
    table["row"] = table["row"].astype(np.int64)
    table["col"] = table["col"].astype(np.int64)
    if g_S is not None:
        table["conductance_S"] = np.asarray(g_S, dtype=float)[stuck]
    n = int(stuck.sum())
    return {
        "stuck_fraction": float(stuck.mean()) if stuck.size else None,
        "stuck_cells": n,
        "stuck_list": " ".join(
            f"{a}({r},{c})" for a, r, c in zip(table["array"], table["row"], table["col"], strict=True)
        ),
        "excluded": n if excluded is None else excluded,
    }, table


# ---------------------------------------------------------------------- curve tensors
@dataclass
class Curves:
    """Readings of one branch as a dense tensor ``g[device, cycle, pulse]`` (S; NaN where missing)."""

    devices: pd.DataFrame  # array, row, col per device index
    cycles: np.ndarray
    g: np.ndarray

    @property
    def n_devices(self) -> int:
        return self.g.shape[0]


def string_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, names)`` of a string column, names sorted; one comparison when all are equal."""
    if values.size and (values == values[0]).all():
        return np.zeros(values.size, dtype=np.int64), np.asarray([values[0]], dtype=object)
    codes, names = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(names, dtype=object)


def curves(df: pd.DataFrame, kind: str | None = None, mask: np.ndarray | None = None) -> Curves:
    """Dense ``[device, cycle, pulse]`` tensor of the readings of ``kind`` (one array or several).

    Built with integer index arithmetic on numpy columns (no groupby, no DataFrame copies):
    device ids from ``(array, row, col)``, cycle and pulse offsets from their minima. Cycles
    without any reading are dropped. ``mask`` selects the rows directly (instead of ``kind``).
    """
    if mask is None:
        mask = np.ones(len(df), dtype=bool) if kind is None else df["kind"].to_numpy() == kind
    if not mask.any():
        return Curves(pd.DataFrame(columns=["array", "row", "col"]), np.zeros(0), np.zeros((0, 0, 0)))
    codes, names = string_codes(df["array"].to_numpy()[mask])
    row = df["row"].to_numpy(np.int64)[mask]
    col = df["col"].to_numpy(np.int64)[mask]
    n_rows, n_cols = int(row.max()) + 1, int(col.max()) + 1
    key = (codes * n_rows + row) * n_cols + col
    present = np.zeros(len(names) * n_rows * n_cols, dtype=bool)
    present[key] = True
    dense = np.cumsum(present) - 1
    dev = dense[key]
    keys = np.flatnonzero(present)
    cyc_raw = _int_column(df["cycle"], mask)
    c0 = int(cyc_raw.min())
    cyc = cyc_raw - c0
    pulse = _int_column(df["pulse"], mask)
    g = np.full((keys.size, int(cyc.max()) + 1, int(pulse.max()) + 1), np.nan)
    g[dev, cyc, pulse] = df["conductance_S"].to_numpy(np.float64)[mask]
    seen = np.isfinite(g).any(axis=(0, 2))
    devices = pd.DataFrame(
        {
            "array": names[keys // (n_rows * n_cols)],
            "row": (keys // n_cols) % n_rows,
            "col": keys % n_cols,
        }
    )
    return Curves(devices, np.arange(g.shape[1])[seen] + c0, g[:, seen, :])


def _int_column(column: pd.Series, mask: np.ndarray) -> np.ndarray:
    """An integer index column (cycle, pulse) under ``mask``; missing values become 0."""
    if column.dtype.kind in "iu":
        return column.to_numpy(np.int64)[mask]
    values = column.to_numpy(np.float64, na_value=np.nan)[mask]
    return np.where(np.isfinite(values), values, 0).astype(np.int64)


# ---------------------------------------------------------------------- cycling metrics
def _plateau(g: np.ndarray, n_fit: float) -> np.ndarray | None:
    """Per-device readings after the fitted corner (``[device, cycle, pulse]``), or None if too few."""
    start = int(math.ceil(1.15 * n_fit)) + 1
    if not math.isfinite(n_fit) or g.shape[2] - start < 3:
        return None
    return g[:, :, start:]


def sigma_over_mu(g: np.ndarray, n_fit: float, read_noise_rel: float | None = None) -> float:
    """Programming variability from potentiation curves ``g[device, cycle, pulse]`` (see module doc)."""
    n_cycles = g.shape[1]
    stop = min(g.shape[2], max(3, int(0.7 * n_fit))) if math.isfinite(n_fit) else g.shape[2]
    part = g[:, :, :stop]
    dg = np.diff(part, axis=2)  # step of pulse 2, 3, ...
    if dg.size == 0:
        return float("nan")
    if n_cycles >= 3:
        mu = np.nanmean(dg, axis=1, keepdims=True)
        correction = n_cycles / (n_cycles - 1)
    else:  # one or two cycles: mean over devices at each pulse, scaled by each device's mean step
        per_dev = np.nanmean(dg, axis=(1, 2), keepdims=True)
        shape = np.nanmean(dg / per_dev, axis=(0, 1), keepdims=True)
        mu = per_dev * shape
        correction = 1.0
    ratio = dg / mu
    ok = np.isfinite(ratio) & (np.abs(mu) > 0)
    if ok.sum() < 10:
        return float("nan")
    var = float(np.var(ratio[ok] - 1.0)) * correction
    if read_noise_rel:
        g_prev, g_next = part[:, :, :-1], part[:, :, 1:]
        noise = (read_noise_rel**2) * (g_prev**2 + g_next**2) / (mu**2)
        var -= float(np.nanmean(noise[ok]))
    return math.sqrt(max(var, 0.0))


def heatmap(g: np.ndarray, g_bins: int = 20, dg_bins: int = 40) -> pd.DataFrame:
    """Fig. 3F: cumulative probability ``P(dG <= y | G)`` (rows: dG upper edges, columns: G centres).

    Pairs ``(G before a pulse, dG of the pulse)`` from every device and cycle; ``dG`` is binned
    between its 0.5 % and 99.5 % quantiles (estimated on at most 200,000 evenly strided pairs),
    values outside go to the end bins.
    """
    before = g[:, :, :-1].reshape(-1)
    step = np.diff(g, axis=2).reshape(-1)
    ok = np.isfinite(before) & np.isfinite(step)
    before, step = before[ok], step[ok]
    if before.size < 10:
        return pd.DataFrame()
    g_lo, g_hi = float(before.min()), float(before.max())
    if g_hi <= g_lo:
        g_hi = g_lo + abs(g_lo) * 1e-3 + 1e-15
    stride = max(1, step.size // 200_000)
    lo, hi = np.quantile(step[::stride], [0.005, 0.995])
    if hi <= lo:
        hi = lo + abs(lo) * 1e-3 + 1e-15
    gi = np.clip(((before - g_lo) / (g_hi - g_lo) * g_bins).astype(np.int64), 0, g_bins - 1)
    di = np.clip(np.ceil((step - lo) / (hi - lo) * dg_bins).astype(np.int64) - 1, 0, dg_bins - 1)
    counts = np.bincount(di * g_bins + gi, minlength=dg_bins * g_bins).reshape(dg_bins, g_bins).astype(float)
    totals = counts.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        cum = np.cumsum(counts, axis=0) / totals
    g_edges = np.linspace(g_lo, g_hi, g_bins + 1)
    dg_edges = np.linspace(lo, hi, dg_bins + 1)
    return pd.DataFrame(cum, index=pd.Index(dg_edges[1:], name="dG_S"),
                        columns=pd.Index(0.5 * (g_edges[1:] + g_edges[:-1]), name="G_S"))  # fmt: skip


def cycling_metrics(
    pot: Curves, dep: Curves | None = None
) -> tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, BranchFit]]:
    """Gmin, Gmax, states, step, nonlinearity, sigma/mu, d2d, read noise from potentiation (and
    depression) curves of one array. Returns ``(summary, tables, fits)``."""
    summary = empty_summary()
    tables: dict[str, pd.DataFrame] = {}
    fits: dict[str, BranchFit] = {}
    g = pot.g
    if g.size == 0:
        return summary, tables, fits
    n_dev, n_cycles, n_pulses = g.shape
    dev_mean: np.ndarray = np.nanmean(g, axis=1)  # [device, pulse]
    dev_range = np.nanmax(dev_mean, axis=1) - np.nanmin(dev_mean, axis=1)
    median_range = float(np.nanmedian(dev_range))
    stuck = ~(dev_range >= STUCK_RANGE_FRACTION * median_range)
    good = ~stuck
    if not good.any():
        good = np.ones(n_dev, dtype=bool)
    fit_p = fit_branch(np.nanmean(dev_mean[good], axis=0))
    fits["potentiation"] = fit_p
    m = np.arange(1, n_pulses + 1)
    shape_p = phi(m, fit_p.nu, fit_p.n)

    fit_d: BranchFit | None = None
    plateau_lo = plateau_hi = None
    if dep is not None and dep.g.size and dep.g.shape[0] == n_dev:
        fit_d = fit_branch(np.nanmean(np.nanmean(dep.g, axis=1)[good], axis=0))
        fits["depression"] = fit_d
        plateau_lo = _plateau(dep.g, fit_d.n)
        plateau_hi = _plateau(g, fit_p.n)
    read_noise = None
    if plateau_lo is not None and plateau_hi is not None:
        g_min_d = np.nanmedian(plateau_lo.reshape(n_dev, -1), axis=1)
        g_max_d = np.nanmedian(plateau_hi.reshape(n_dev, -1), axis=1)
        source = "plateau"
        rel = np.nanstd(plateau_lo[good], axis=2, ddof=1) / np.nanmean(plateau_lo[good], axis=2)
        read_noise = float(np.nanmean(rel))
    else:
        # per-device linear least squares on the shared fitted shape
        basis = np.stack([np.ones_like(shape_p), shape_p], axis=1)
        y = np.where(np.isfinite(dev_mean), dev_mean, np.nanmean(dev_mean, axis=0, keepdims=True))
        coef, *_ = np.linalg.lstsq(basis, y.T, rcond=None)
        g_min_d, g_max_d = coef[0], coef[0] + coef[1]
        source = "fit"
    span_d = g_max_d - g_min_d
    g_min = float(np.nanmean(g_min_d[good]))
    g_max = float(np.nanmean(g_max_d[good]))
    n_states = fit_p.n
    summary.update(
        g_min_S=_num(g_min),
        g_max_S=_num(g_max),
        on_off_ratio=_num(g_max / g_min) if g_min > 0 else None,
        n_states=_num(n_states),
        step_mean_S=_num((g_max - g_min) / n_states) if n_states > 0 else None,
        sigma_over_mu=_num(sigma_over_mu(g[good], fit_p.n, read_noise)),
        nonlinearity=_num(fit_p.nu),
        nonlinearity_depression=_num(fit_d.nu) if fit_d is not None else None,
        saturated=bool(fit_p.saturated),
        d2d_sigma=_spread(g_min_d[good]),
        d2d_range_sigma=_spread(span_d[good]),
        read_noise_rel=_num(read_noise),
        n_devices=int(n_dev),
        n_cycles=int(n_cycles),
        fit_rms_S=_num(fit_p.rms_S),
    )
    per_device = pot.devices.copy()
    per_device["g_min_S"] = g_min_d
    per_device["g_max_S"] = g_max_d
    per_device["on_off_ratio"] = g_max_d / g_min_d
    per_device["stuck"] = stuck
    per_device["bounds_from"] = source
    tables["per_device"] = per_device
    # all devices stuck: none is left out (there is nothing else to go by)
    keys, tables["stuck"] = stuck_summary(
        pot.devices, stuck, np.nanmedian(dev_mean, axis=1), excluded=int((stuck & ~good).sum())
    )
    summary.update(keys)
    curve = pd.DataFrame(
        {
            "pulse": m,
            "g_mean_S": np.nanmean(dev_mean[good], axis=0),
            "g_fit_S": fit_p.a + fit_p.b * shape_p,
        }
    )
    if fit_d is not None and dep is not None and dep.g.shape[2] == n_pulses:
        curve["g_depression_mean_S"] = np.nanmean(np.nanmean(dep.g, axis=1)[good], axis=0)
        curve["g_depression_fit_S"] = fit_d.a + fit_d.b * phi(m, fit_d.nu, fit_d.n)
    tables["curve"] = curve
    tables["heatmap"] = heatmap(g[good])
    return summary, tables, fits


# ---------------------------------------------------------------------- per protocol
#: an analysis of one run: ``(store, run, its readings) -> Analysis``; protocols name theirs
Analyzer = Callable[[Store, RunInfo, pd.DataFrame], Analysis]


def device_areas(info: RunInfo) -> dict[str, float]:
    """Device area (m^2) of every array of the run's station, from the station model."""
    station = parse_station(info.station, f"run {info.id}")
    return {a.name: a.device_area_m2 for a in station.arrays}


def analyze_cycling(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    """potentiation-cycling, pulse-response, area-scaling: per array, then area slopes."""
    areas = device_areas(info)
    kind = df["kind"].to_numpy()
    pot_mask = kind == "potentiation"
    rest = ~pot_mask
    dep_mask = np.zeros_like(pot_mask)
    if rest.any():
        dep_mask[rest] = kind[rest] == "depression"
    array_col = df["array"].to_numpy()
    in_branch = pot_mask | dep_mask
    names = [str(n) for n in string_codes(array_col[in_branch])[1]] if in_branch.any() else []
    rows = []
    per: dict[str, tuple[dict[str, Any], dict[str, pd.DataFrame], dict[str, BranchFit]]] = {}
    for name in names:
        in_array = np.ones_like(pot_mask) if len(names) == 1 else array_col == name
        pot = curves(df, mask=pot_mask & in_array)
        dep = curves(df, mask=dep_mask & in_array) if dep_mask.any() else None
        summary, tables, fits = cycling_metrics(pot, dep)
        per[name] = (summary, tables, fits)
        area = areas.get(name, float("nan"))
        g_min, g_max = summary["g_min_S"], summary["g_max_S"]
        rows.append(
            {
                "array": name,
                "area_m2": area,
                "diameter_m": 2 * math.sqrt(area / math.pi) if math.isfinite(area) else float("nan"),
                "n_devices": summary.get("n_devices"),
                "g_min_S": g_min,
                "g_max_S": g_max,
                "g_range_S": (g_max - g_min) if g_min is not None and g_max is not None else None,
                "step_mean_S": summary["step_mean_S"],
                "n_states": summary["n_states"],
                "nonlinearity": summary["nonlinearity"],
                "sigma_over_mu": summary["sigma_over_mu"],
                "d2d_sigma": summary.get("d2d_sigma"),
            }
        )
    per_array = pd.DataFrame(rows)
    if per_array.empty:
        return Analysis(info.id, info.protocol, empty_summary())
    per_array = per_array.sort_values("area_m2", na_position="first").reset_index(drop=True)
    ref = str(per_array["array"].iloc[-1])  # the largest devices
    summary, tables, fits = per[ref]
    summary = dict(summary)
    summary["array"] = ref
    if len(per_array) > 1 and per_array["area_m2"].nunique() > 1:
        a = per_array["area_m2"].to_numpy(float)
        summary["area_slope_range"] = _num(loglog_slope(a, per_array["g_range_S"].to_numpy(float))[0])
        summary["area_slope_step"] = _num(loglog_slope(a, per_array["step_mean_S"].to_numpy(float))[0])
        summary["area_slope_gmin"] = _num(loglog_slope(a, per_array["g_min_S"].to_numpy(float))[0])
    tables = dict(tables)
    tables["per_array"] = per_array
    if len(per) > 1:
        tables["per_device"] = pd.concat([p[1]["per_device"] for p in per.values() if "per_device" in p[1]])
    return Analysis(info.id, info.protocol, summary, tables, fits)


def retention_table(store: Store, run_id: int) -> pd.DataFrame:
    """Retention reads as a table: index time since programming (s), one column per device (S)."""
    df = store.readings_df(run_id)
    df = df[df["kind"] == "retention"]
    if df.empty:
        return pd.DataFrame()
    events = store.events_df(run_id)
    reads = events[events["kind"] == "retention-read"]
    elapsed = {int(d["step"]): float(d["elapsed_s"]) for d in reads["detail"]}
    df = df[df["step"].isin(list(elapsed))]
    table = df.pivot_table(
        index="step", columns=["array", "row", "col"], values="conductance_S", aggfunc="last"
    )
    table.index = pd.Index([elapsed[int(s)] for s in table.index], name="t_s")
    return table.sort_index()


def analyze_retention(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    summary = empty_summary()
    table = retention_table(store, info.id)
    if table.empty:
        return Analysis(info.id, info.protocol, summary)
    base = df[df["kind"] == "retention-baseline"]
    t = table.index.to_numpy(float)
    mean = table.mean(axis=1).to_numpy()
    if not base.empty:
        g_base = float(base["conductance_S"].mean())
        _, amp, tau = fit_exponential_decay(t, mean, offset=g_base)
    else:
        g_base, amp, tau = fit_exponential_decay(t, mean)
    g0 = float(mean[0])
    summary.update(
        g_min_S=_num(g_base),
        retention_tau_s=_num(tau),
        retention_g0_S=_num(g0),
        retention_final_fraction=_num((mean[-1] - g_base) / (g0 - g_base)) if g0 != g_base else None,
        n_devices=int(table.shape[1]),
    )
    fitted = g_base + amp * np.exp(-t / tau) if math.isfinite(tau) else np.full_like(t, np.nan)
    curve = pd.DataFrame({"t_s": t, "g_mean_S": mean, "g_fit_S": fitted})
    return Analysis(info.id, info.protocol, summary, {"retention": table, "curve": curve})


def analyze_forming(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    summary = empty_summary()
    events = store.events_df(info.id)
    formed = [d for k, d in zip(events["kind"], events["detail"], strict=True) if k == "formed"]
    missed = [d for k, d in zip(events["kind"], events["detail"], strict=True) if k == "not-formed"]
    volts = np.array([d["forming_voltage_V"] for d in formed], dtype=float)
    rows = [{"row": d["row"], "col": d["col"], "forming_voltage_V": d["forming_voltage_V"]} for d in formed]
    rows += [{"row": d["row"], "col": d["col"], "forming_voltage_V": None} for d in missed]
    total = len(formed) + len(missed)
    ro = df[df["kind"] == "readout"]
    after = ro[ro["step"] == 1]["conductance_S"]
    summary.update(
        forming_voltage_V=_num(volts.mean()) if volts.size else None,
        forming_voltage_std_V=_num(volts.std()) if volts.size > 1 else None,
        formed_fraction=len(formed) / total if total else None,
        g_min_S=_num(after.mean()) if len(after) else None,
        n_devices=total,
    )
    return Analysis(info.id, info.protocol, summary, {"per_device": pd.DataFrame(rows)})


def ndr_features(voltage_V: np.ndarray, current_A: np.ndarray) -> dict[str, float | None]:
    """Peak and valley of a negative-differential-resistance I-V (positive branch), if any."""
    v = np.asarray(voltage_V, dtype=float)
    i = np.asarray(current_A, dtype=float)
    pos = v > 0
    if pos.sum() < 5:
        return {}
    order = np.argsort(v[pos], kind="stable")
    vs, is_ = v[pos][order], i[pos][order]
    k = int(np.argmax(is_))
    if k >= len(vs) - 2:
        return {}
    rest = is_[k:]
    j = k + int(np.argmin(rest))
    if is_[j] >= 0.95 * is_[k]:
        return {}
    return {
        "ndr_peak_V": float(vs[k]),
        "ndr_peak_A": float(is_[k]),
        "ndr_valley_V": float(vs[j]),
        "peak_to_valley_ratio": float(is_[k] / is_[j]) if is_[j] > 0 else None,
    }


def _iv_loops(summary: dict[str, Any], iv: pd.DataFrame) -> None:
    """Loop area (W, mean over the sweeps) and NDR features of the first sweep, into ``summary``."""
    if not iv.empty:
        areas = []
        for _, part in iv.groupby(["array", "row", "col", "cycle"], sort=False):
            v = part["voltage_V"].to_numpy(float)
            i = part["current_A"].to_numpy(float)
            areas.append(abs(float(np.sum(0.5 * (i[1:] + i[:-1]) * np.diff(v)))))
        summary["hysteresis_area_W"] = _num(float(np.mean(areas)))
        first = iv[iv["cycle"] == iv["cycle"].min()]
        first = first[first["array"] == first["array"].iloc[0]]
        summary.update(ndr_features(first["voltage_V"].to_numpy(), first["current_A"].to_numpy()))


def analyze_dc_iv(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    """dc-iv: read-out on/off after the set and reset halves, loop area, NDR features."""
    summary = empty_summary()
    ro = df[df["kind"] == "readout"]
    if not ro.empty:
        g_set = ro[ro["step"] == 1]["conductance_S"].to_numpy(float)
        g_reset = ro[ro["step"] == 2]["conductance_S"].to_numpy(float)
        if g_set.size and g_reset.size:
            summary.update(
                g_min_S=_num(g_reset.mean()),
                g_max_S=_num(g_set.mean()),
                on_off_ratio=_num(g_set.mean() / g_reset.mean()),
            )
    _iv_loops(summary, df[df["kind"] == "iv"])
    return Analysis(info.id, info.protocol, summary)


def analyze_iv_sweep(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    """iv-sweep: loop area, NDR features, read-out current against device area."""
    summary = empty_summary()
    _iv_loops(summary, df[df["kind"] == "iv"])
    ro = df[df["kind"] == "readout"]
    tables: dict[str, pd.DataFrame] = {}
    if not ro.empty:
        areas_by = device_areas(info)
        before = ro[ro["step"] == 0].groupby("array")["current_A"].mean()
        table = pd.DataFrame({"array": before.index, "read_current_A": before.to_numpy()})
        table["area_m2"] = [areas_by.get(a, float("nan")) for a in table["array"]]
        table["current_density_A_per_m2"] = table["read_current_A"] / table["area_m2"]
        tables["per_array"] = table
        if table["area_m2"].nunique() > 1:
            summary["area_slope_read_current"] = _num(
                loglog_slope(table["area_m2"].to_numpy(float), table["read_current_A"].abs().to_numpy(float))[
                    0
                ]
            )
    return Analysis(info.id, info.protocol, summary, tables)


def analyze_threshold(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    summary = empty_summary()
    events = store.events_df(info.id)
    found = events[events["kind"] == "thresholds"]
    if found.empty:
        return Analysis(info.id, info.protocol, summary)
    detail = found["detail"].iloc[0]
    values = np.array([np.nan if v is None else v for v in detail["threshold_V"]], dtype=float)
    ok = np.isfinite(values)
    table = pd.DataFrame({"row": [c[0] for c in detail["cells"]], "col": [c[1] for c in detail["cells"]],
                          "threshold_V": values})  # fmt: skip
    summary.update(
        threshold_V=_num(values[ok].mean()) if ok.any() else None,
        threshold_std_V=_num(values[ok].std()) if ok.sum() > 1 else None,
        switched_fraction=float(ok.mean()),
        n_devices=int(values.size),
    )
    return Analysis(info.id, info.protocol, summary, {"per_device": table})


def analyze_write_verify(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    summary = empty_summary()
    events = store.events_df(info.id)
    targets_ev = events[events["kind"] == "targets"]
    result_ev = events[events["kind"] == "write-verify-result"]
    final = df[df["kind"] == "verify-final"]
    if targets_ev.empty or final.empty:
        return Analysis(info.id, info.protocol, summary)
    detail = targets_ev["detail"].iloc[0]
    target = {tuple(c): t for c, t in zip(detail["cells"], detail["target_S"], strict=True)}
    t = np.array([target[(r, c)] for r, c in zip(final["row"], final["col"], strict=True)])
    g = final["conductance_S"].to_numpy(float)
    rel = (g - t) / t
    ok = np.abs(rel) <= float(detail["tolerance_rel"])
    table = final[["array", "row", "col", "conductance_S"]].copy()
    table["target_S"] = t
    table["error_rel"] = rel
    table["converged"] = ok
    missed = [f"({r},{c})" for r, c in zip(final["row"][~ok], final["col"][~ok], strict=True)]
    summary.update(
        converged_fraction=float(ok.mean()),
        not_converged=" ".join(missed) if missed else "",
        final_error_rms_rel=_num(float(np.sqrt(np.mean(rel**2)))),
        iterations_max=int(result_ev["detail"].iloc[0]["iterations_max"]) if not result_ev.empty else None,
        n_devices=int(len(final)),
    )
    return Analysis(info.id, info.protocol, summary, {"per_device": table})


def disturb_table(store: Store, run_id: int) -> pd.DataFrame:
    """Read-disturb drift per check: index cumulative read-stress pulses; median, mean, max |rel|."""
    df = store.readings_df(run_id)
    df = df[df["kind"] == "disturb"]
    if df.empty:
        return pd.DataFrame()
    events = store.events_df(run_id)
    marks = {int(d["step"]): int(d["cumulative_reads"]) for k, d in zip(events["kind"], events["detail"], strict=True)
             if k == "stress"}  # fmt: skip
    table = df.pivot_table(
        index="step", columns=["array", "row", "col"], values="conductance_S", aggfunc="last"
    )
    rel = table / table.iloc[0] - 1.0
    out = pd.DataFrame(
        {
            "median_rel": rel.median(axis=1),
            "mean_rel": rel.mean(axis=1),
            "max_abs_rel": rel.abs().max(axis=1),
        }
    )
    out.index = pd.Index([marks.get(int(s), int(s)) for s in out.index], name="cumulative_reads")
    return out


def analyze_disturb(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    summary = empty_summary()
    table = disturb_table(store, info.id)
    if table.empty:
        return Analysis(info.id, info.protocol, summary)
    summary.update(
        read_disturb_max_rel=_num(table["max_abs_rel"].max()),
        read_disturb_final_median_rel=_num(table["median_rel"].iloc[-1]),
        read_disturb_reads=int(table.index.max()),
        g_median_S=_num(df[df["kind"] == "disturb"]["conductance_S"].median()),
    )
    return Analysis(info.id, info.protocol, summary, {"drift": table})


def analyze_endurance(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    summary = empty_summary()
    s = df[df["kind"] == "endurance-set"]
    r = df[df["kind"] == "endurance-reset"]
    if s.empty or r.empty:
        return Analysis(info.id, info.protocol, summary)
    key = ["array", "row", "col", "cycle"]
    both = s[key + ["conductance_S"]].merge(r[key + ["conductance_S"]], on=key, suffixes=("_set", "_reset"))
    both["window"] = both["conductance_S_set"] / both["conductance_S_reset"]
    ratio = float(info.parameters.get("fail_ratio", 2.0))
    failed = both[both["window"] < ratio].groupby(["array", "row", "col"])["cycle"].min()
    devices = both.groupby(["array", "row", "col"]).size().index
    per_device = pd.DataFrame(index=devices).join(failed.rename("failed_cycle")).reset_index()
    first = both[both["cycle"] == both["cycle"].min()]
    cycles_run = int(both["cycle"].max()) + 1
    summary.update(
        g_min_S=_num(first["conductance_S_reset"].mean()),
        g_max_S=_num(first["conductance_S_set"].mean()),
        on_off_ratio=_num(first["window"].median()),
        endurance_cycles_median=_num(failed.median() + 1) if len(failed) else None,
        failed_fraction=float(len(failed) / len(devices)),
        cycles_run=cycles_run,
        n_devices=int(len(devices)),
    )
    window = both.groupby("cycle")["window"].median().rename("window_median").reset_index()
    return Analysis(info.id, info.protocol, summary, {"per_device": per_device, "window": window})


def analyze_map(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    """conductance-map: conductance statistics of the last map, stuck cells detected and left out
    (the map's devices are read in one state; ``d2d_sigma`` is std/mean of the devices' reads)."""
    reads = df[df["conductance_S"].notna()]
    if reads.empty:
        return Analysis(info.id, info.protocol, empty_summary())
    return _conductance_statistics(info, df, reads[reads["step"] == reads["step"].max()], detect_stuck=True)


def analyze_readings(store: Store, info: RunInfo, df: pd.DataFrame) -> Analysis:
    """Any run (sequence; protocols that name no analysis): statistics of every conductance read."""
    reads = df[df["conductance_S"].notna()]
    if reads.empty:
        return Analysis(info.id, info.protocol, empty_summary())
    return _conductance_statistics(info, df, reads)


def _conductance_statistics(
    info: RunInfo, df: pd.DataFrame, reads: pd.DataFrame, detect_stuck: bool = False
) -> Analysis:
    """Median, bounds, spread and counts of the conductance reads ``reads`` of the run's ``df``.

    With ``detect_stuck`` (maps: every device read in the same state) devices far outside the
    population (:func:`outlier_cells` of each device's median read) are reported as stuck and
    left out of the median, bounds and spread.
    """
    summary = empty_summary()
    per_device = reads.groupby(["array", "row", "col"], sort=True)["conductance_S"].median()
    devices = per_device.index.to_frame(index=False)
    g_dev = per_device.to_numpy(float)
    stuck = outlier_cells(g_dev) if detect_stuck else np.zeros(g_dev.size, dtype=bool)
    tables: dict[str, pd.DataFrame] = {}
    if detect_stuck:
        keys, tables["stuck"] = stuck_summary(devices, stuck, g_dev)
        summary.update(keys)
    if stuck.any():
        key = pd.MultiIndex.from_frame(reads[["array", "row", "col"]])
        kept = ~key.isin(per_device.index[stuck])
        reads = reads[kept]
    g = reads["conductance_S"].to_numpy(float)
    if g_dev.size - int(stuck.sum()) < 2:
        spread = None  # one device has no device-to-device spread
    elif detect_stuck:
        spread = _spread(g_dev[~stuck])
    else:
        spread = _num(g.std() / g.mean())  # every read: devices and repeats alike
    summary.update(
        g_median_S=_num(np.median(g)),
        g_min_S=_num(g.min()),
        g_max_S=_num(g.max()),
        on_off_ratio=_num(g.max() / g.min()) if g.min() > 0 else None,
        d2d_sigma=spread,
        n_devices=int(devices.shape[0]),
        readings=int(len(df)),
    )
    tables["by_kind"] = reads.groupby("kind")["conductance_S"].describe().reset_index()
    if detect_stuck:
        table = devices.copy()
        table["conductance_S"] = g_dev
        table["stuck"] = stuck
        tables["per_device"] = table
    return Analysis(info.id, info.protocol, summary, tables)


def analyzer_of(protocol: str) -> Analyzer:
    """The analysis the installed protocol called ``protocol`` names (its class attribute
    ``analysis``); :func:`analyze_readings` for a protocol that names none or is not installed."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=protocol):
        named: Analyzer | None = getattr(entry_point.load(), "analysis", None)
        if named is not None:
            return named
    return analyze_readings


def analyze(store: Store, run_id: int, readings: pd.DataFrame | None = None) -> Analysis:
    """Extract the parameters of run ``run_id`` (see the module docstring for the definitions)
    with the analysis its protocol names (:func:`analyzer_of`).

    ``readings`` may pass the run's readings already loaded (``store.readings_df(run_id)``).
    Protocols without a dedicated analyzer get conductance statistics.
    """
    info = store.run(run_id)
    df = store.readings_df(run_id) if readings is None else readings
    analyzer = analyzer_of(info.protocol)
    result = analyzer(store, info, df)
    result.summary.setdefault("readings", int(len(df)))
    return result
