"""Read-disturb check: does reading change the conductance?

Methods: the selected cells are read at ``read_voltage_V`` (kind ``disturb``, ``step`` 0). They then
receive read-stress pulses: pulses of the read amplitude ``stress_voltage_V`` and width
``stress_width_s`` (what a read applies to a device), in blocks whose cumulative counts are
log-spaced up to ``stress_reads``; after each block the cells are read again (``step`` k, the
cumulative count in a ``stress`` event). A stress amplitude above the station's read limit is
refused (it would not be a read). `rram-hil analyze` reports the largest relative drift
``|G_k - G_0| / G_0`` and the drift after the last block.

A device whose switching threshold lies above the read voltage shows only read noise; stressing
at or above the threshold shows the drift a read would cause there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import Pulse
from protocols.analysis.extract import analyze_disturb, disturb_table
from protocols.params import parse_cells, quantity, read_voltage, station_array
from protocols.plots import use_agg

KIND = "disturb"


class ReadDisturbParams(Params):
    array: str = quantity("A", "", "array holding the device(s)")
    cells: str = quantity("all", "", "cells: 'R,C', 'R,C;R,C', ranges 'R0:R1,C0:C1' or 'all'")
    read_voltage_V: float = read_voltage("voltage of the check reads")
    stress_voltage_V: float = read_voltage("amplitude of the read-stress pulses")
    stress_width_s: float = quantity(100e-6, "s", "width of a read-stress pulse (one read)", gt=0, le=1)
    stress_reads: int = quantity(10_000, "", "total read-stress pulses per cell", ge=1, le=1_000_000_000)
    blocks: int = quantity(5, "", "log-spaced check points (reads of the cells)", ge=1, le=1000)

    def cumulative(self) -> np.ndarray:
        """Cumulative stress count after each block: log-spaced, increasing, ending at stress_reads."""
        raw = np.unique(np.rint(np.geomspace(1, self.stress_reads, self.blocks)).astype(np.int64))
        return raw[raw >= 1]


class ReadDisturb(Protocol):
    name = "read-disturb"
    title = "Read-disturb check: read-stress pulses in log-spaced blocks, conductance read after each"
    Params = ReadDisturbParams
    analysis = staticmethod(analyze_disturb)

    def preflight(self, params: ReadDisturbParams, station: Station) -> None:
        parse_cells(params.cells, station_array(station, params.array))
        limits = station.limits
        limits.check_read_voltage(params.read_voltage_V)
        limits.check_read_voltage(params.stress_voltage_V, "stress_voltage_V")
        limits.check_width(params.stress_width_s, "stress_width_s")

    def execute(self, ctx: RunContext, params: ReadDisturbParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        stress = Pulse(params.stress_voltage_V, params.stress_width_s)
        chunk = ctx.station.limits.max_pulses_per_call
        marks = params.cumulative()
        ctx.progress.start(len(marks), f"{self.name}: up to {params.stress_reads} reads")
        g0 = backend.read(params.array, cells, params.read_voltage_V)
        ctx.log_readout(g0, kind=KIND, step=0)
        ctx.log_event("stress", step=0, cumulative_reads=0)
        done = 0
        for k, mark in enumerate(marks, start=1):
            todo = int(mark) - done
            while todo > 0:
                n = min(todo, chunk)
                ctx.log_train(backend.pulse(params.array, cells, stress, n), purpose="read-stress", step=k)
                todo -= n
            done = int(mark)
            g = backend.read(params.array, cells, params.read_voltage_V)
            ctx.log_readout(g, kind=KIND, step=k)
            ctx.log_event("stress", step=k, cumulative_reads=done)
            drift = np.abs(g.flat_conductance_S - g0.flat_conductance_S) / g0.flat_conductance_S
            ctx.progress.advance(1, status=f"{done} reads: max drift {drift.max():.2%}")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        table = disturb_table(store, run_id)
        if table.empty:
            return None
        plt = use_agg()
        fig, ax = plt.subplots(figsize=(8, 4.5))
        x = np.maximum(table.index.to_numpy(), 0.5)
        ax.semilogx(x, table["median_rel"] * 100, "o-", label="median")
        ax.semilogx(x, table["max_abs_rel"] * 100, "s--", label="largest |drift|")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(xlabel="cumulative read-stress pulses", ylabel="(G - G0) / G0 (%)",
               title=f"run {run_id}: read disturb")  # fmt: skip
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
