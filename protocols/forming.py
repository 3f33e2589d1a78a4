"""Forming: a compliance-limited voltage ramp until the device forms, or up to a stated limit.

Methods: each device is read at ``read_voltage_V``, then its voltage ramps from ``v_start_V`` in
``v_step_V`` steps towards ``v_stop_V`` (the stated limit), each point held ``dwell_s`` with the
current limited to ``compliance_A`` (set before the output turns on). The ramp runs as I-V sweeps
of ``segment_points`` points; after each segment the device counts as formed at the first point
where its chord conductance ``I / V`` has jumped by at least ``jump_ratio`` over the previous
point, and its ramp stops there. Every point of the ramp is committed (kind ``forming``, ``step`` =
point index), the forming voltage as a ``formed`` event, and the device is read again afterwards
(kind ``readout``, ``step`` 0 before and 1 after).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import model_validator

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from protocols.analysis.extract import analyze_forming
from protocols.params import parse_cells, quantity, read_voltage, station_array
from protocols.plots import use_agg
from protocols.steps import check_sweep_steps, signed_extreme, sweep_iv, sweep_points

KIND = "forming"


class FormingParams(Params):
    array: str = quantity("A", "", "array holding the device(s)")
    cells: str = quantity("0,0", "", "cells to form, one after the other: 'R,C', 'R,C;R,C', ranges or 'all'")
    v_start_V: float = quantity(0.0, "V", "first voltage of the ramp", ge=-50, le=50)
    v_stop_V: float = quantity(5.0, "V", "last voltage of the ramp (the limit)", ge=-50, le=50)
    v_step_V: float = quantity(0.05, "V", "voltage step", gt=0, le=10)
    compliance_A: float = quantity(100e-6, "A", "current compliance during the ramp", gt=0, le=10)
    dwell_s: float = quantity(1e-3, "s", "time at each point", gt=0, le=60)
    jump_ratio: float = quantity(
        5.0, "", "rise of I/V between two points that counts as forming", gt=1, le=1e6
    )
    segment_points: int = quantity(10, "", "points per sweep between checks", ge=1, le=100_000)
    read_voltage_V: float = read_voltage("read voltage before and after")

    @model_validator(mode="after")
    def _points(self) -> FormingParams:
        check_sweep_steps(self.v_start_V, self.v_stop_V, self.v_step_V)
        return self

    def voltages(self) -> np.ndarray:
        """The ramp's voltages (V), ``v_start_V`` to ``v_stop_V``."""
        return sweep_points(self.v_start_V, self.v_stop_V, self.v_step_V)


def forming_index(voltage_V: np.ndarray, current_A: np.ndarray, jump_ratio: float) -> int | None:
    """Index of the first point whose chord conductance ``|I/V|`` rose ``jump_ratio``-fold over the
    previous point with a non-zero voltage, or ``None``."""
    v = np.asarray(voltage_V, dtype=float)
    i = np.asarray(current_A, dtype=float)
    ok = np.abs(v) > 0
    g = np.abs(i[ok] / v[ok])
    where = np.flatnonzero(ok)
    rise = g[1:] >= jump_ratio * np.maximum(g[:-1], 1e-30)
    hits = np.flatnonzero(rise)
    return None if hits.size == 0 else int(where[hits[0] + 1])


class Forming(Protocol):
    name = "forming"
    title = "Compliance-limited voltage ramp until the device forms (or the limit), ramp recorded"
    Params = FormingParams
    analysis = staticmethod(analyze_forming)

    def preflight(self, params: FormingParams, station: Station) -> None:
        parse_cells(params.cells, station_array(station, params.array))
        limits = station.limits
        peak = signed_extreme(params.voltages())
        limits.check_voltage(
            peak, "v_stop_V" if abs(params.v_stop_V) >= abs(params.v_start_V) else "v_start_V"
        )
        limits.check_compliance(params.compliance_A)
        limits.check_dwell(params.dwell_s)
        limits.check_read_voltage(params.read_voltage_V)

    def execute(self, ctx: RunContext, params: FormingParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        volts = params.voltages()
        ctx.progress.start(len(cells), f"{self.name}: ramp to {params.v_stop_V:g} V")
        ctx.log_event("compliance", array=params.array, compliance_A=params.compliance_A)
        for row, col in cells.tolist():
            cell = [(row, col)]
            ctx.log_readout(backend.read(params.array, cell, params.read_voltage_V), kind="readout", step=0)
            v_all: list[np.ndarray] = []
            i_all: list[np.ndarray] = []
            formed_at: int | None = None
            for start in range(0, len(volts), params.segment_points):
                seg = volts[start : start + params.segment_points]
                iv = sweep_iv(
                    ctx, params.array, row, col, seg, params.compliance_A, params.dwell_s,
                    kind=KIND, step=np.arange(start, start + len(seg)),
                )  # fmt: skip
                v_all.append(seg)
                i_all.append(iv.current_A)
                formed_at = forming_index(np.concatenate(v_all), np.concatenate(i_all), params.jump_ratio)
                if formed_at is not None:
                    break
            after = backend.read(params.array, cell, params.read_voltage_V)
            ctx.log_readout(after, kind="readout", step=1)
            if formed_at is None:
                ctx.log_event("not-formed", row=row, col=col, limit_V=float(volts[-1]))
                status = f"({row},{col}) not formed up to {volts[-1]:g} V"
            else:
                ctx.log_event("formed", row=row, col=col, forming_voltage_V=float(volts[formed_at]))
                status = f"({row},{col}) formed at {volts[formed_at]:g} V"
            ctx.progress.advance(1, status=status)

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        df = df[df["kind"] == KIND]
        if df.empty:
            return None
        plt = use_agg()
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for (row, col), part in df.groupby(["row", "col"]):
            ax.semilogy(part["voltage_V"], np.maximum(np.abs(part["current_A"]), 1e-15), "-", lw=0.8,
                        label=f"({row},{col})")  # fmt: skip
        ax.set(xlabel="voltage (V)", ylabel="|current| (A)", title=f"run {run_id}: forming ramps")
        if df.groupby(["row", "col"]).ngroups <= 12:
            ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
