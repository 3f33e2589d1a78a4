"""Bipolar DC I-V: set and reset sweeps with hysteresis and compliance, several cycles.

Methods: per cycle and device, the source sweeps ``0 -> v_set_V -> 0`` with the current limited
to ``compliance_set_A`` and then ``0 -> v_reset_V -> 0`` with ``compliance_reset_A``, ``v_step_V``
per point, each held ``dwell_s`` (each half is one I-V sweep, its compliance set before the output
turns on). The device is read at ``readout_V`` before the cycle and after each half (kind
``readout``, ``step`` 0, 1, 2). I-V points are kind ``iv`` with ``step`` the point index along the
cycle and ``pulse`` 0 for the set half, 1 for the reset half. The loop of a gradual device opens on
the set half and closes on the reset half (hysteresis); `rram-hil analyze` reports the read-out
on/off ratio and the loop area.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import model_validator

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from protocols.analysis.extract import analyze_dc_iv
from protocols.params import parse_cells, quantity, read_voltage, station_array
from protocols.plots import use_agg
from protocols.steps import check_sweep_steps, sweep_iv, sweep_points

KIND = "iv"
SET_HALF, RESET_HALF = 0, 1


class DCIVParams(Params):
    array: str = quantity("A", "", "array holding the device(s)")
    cells: str = quantity("0,0", "", "cells, swept one after the other: 'R,C', 'R,C;R,C', ranges or 'all'")
    v_set_V: float = quantity(3.0, "V", "turning voltage of the set (positive) half", gt=0, le=50)
    v_reset_V: float = quantity(-3.0, "V", "turning voltage of the reset (negative) half", ge=-50, lt=0)
    v_step_V: float = quantity(0.03, "V", "voltage step", gt=0, le=10)
    compliance_set_A: float = quantity(1e-3, "A", "current compliance of the set half", gt=0, le=10)
    compliance_reset_A: float = quantity(1e-3, "A", "current compliance of the reset half", gt=0, le=10)
    dwell_s: float = quantity(1e-3, "s", "time at each point", gt=0, le=60)
    readout_V: float = read_voltage("read-out voltage")
    cycles: int = quantity(3, "", "number of set/reset cycles", ge=1, le=100_000)

    @model_validator(mode="after")
    def _points(self) -> DCIVParams:
        for name, v in (("v_set_V", self.v_set_V), ("v_reset_V", self.v_reset_V)):
            check_sweep_steps(0.0, v, self.v_step_V, span=f"to {name} = {v:g} V")
        return self

    def half(self, turn_V: float) -> np.ndarray:
        """``0 -> turn_V -> 0`` in ``v_step_V`` steps (V)."""
        return sweep_points(0.0, turn_V, self.v_step_V, return_sweep=True)


class DCIV(Protocol):
    name = "dc-iv"
    title = "Bipolar DC I-V sweeps (set then reset) with hysteresis and compliance, several cycles"
    Params = DCIVParams
    analysis = staticmethod(analyze_dc_iv)

    def preflight(self, params: DCIVParams, station: Station) -> None:
        parse_cells(params.cells, station_array(station, params.array))
        limits = station.limits
        limits.check_voltage(params.v_set_V, "v_set_V")
        limits.check_voltage(params.v_reset_V, "v_reset_V")
        limits.check_compliance(params.compliance_set_A, "compliance_set_A")
        limits.check_compliance(params.compliance_reset_A, "compliance_reset_A")
        limits.check_dwell(params.dwell_s)
        limits.check_read_voltage(params.readout_V, "readout_V")

    def execute(self, ctx: RunContext, params: DCIVParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        halves = (
            (SET_HALF, params.half(params.v_set_V), params.compliance_set_A),
            (RESET_HALF, params.half(params.v_reset_V), params.compliance_reset_A),
        )
        ctx.progress.start(
            params.cycles * len(cells), f"{self.name}: {params.v_set_V:g} / {params.v_reset_V:g} V"
        )
        for cycle in range(params.cycles):
            for row, col in cells.tolist():
                cell = [(row, col)]
                ctx.log_readout(
                    backend.read(params.array, cell, params.readout_V), kind="readout", cycle=cycle, step=0
                )
                offset = 0
                hits = 0
                for half, volts, compliance in halves:
                    ctx.log_event("compliance", array=params.array, row=row, col=col, compliance_A=compliance)
                    iv = sweep_iv(
                        ctx, params.array, row, col, volts, compliance, params.dwell_s,
                        kind=KIND, cycle=cycle, pulse=half, step=np.arange(offset, offset + len(volts)),
                    )  # fmt: skip
                    hits += int(iv.in_compliance.sum())
                    offset += len(volts)
                    ctx.log_readout(
                        backend.read(params.array, cell, params.readout_V),
                        kind="readout",
                        cycle=cycle,
                        step=1 + half,
                    )
                ctx.progress.advance(
                    1, status=f"({row},{col}) cycle {cycle + 1}: {hits} points in compliance"
                )

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        iv = df[df["kind"] == KIND]
        if iv.empty:
            return None
        plt = use_agg()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        cmap = plt.get_cmap("viridis")
        n_cycles = int(iv["cycle"].max()) + 1
        for (row, col, cycle), part in iv.groupby(["row", "col", "cycle"]):
            color = cmap(cycle / max(n_cycles - 1, 1))
            ax1.plot(part["voltage_V"], part["current_A"] * 1e6, "-", lw=0.8, color=color)
            ax2.semilogy(part["voltage_V"], np.maximum(np.abs(part["current_A"]), 1e-15), "-", lw=0.8,
                         color=color, label=f"({row},{col}) #{cycle}")  # fmt: skip
        ax1.set(xlabel="voltage (V)", ylabel="current (uA)", title="I-V loops (colour: cycle)")
        ax2.set(xlabel="voltage (V)", ylabel="|current| (A)", title="log scale")
        if iv.groupby(["row", "col", "cycle"]).ngroups <= 10:
            ax2.legend(fontsize=7)
        fig.suptitle(f"run {run_id}: dc-iv", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
