"""Conductance map: read every cell of an array at the read voltage.

Methods: the whole array is read at ``read_voltage_V`` in one backend call (parallel where the
backend reads in parallel, cell by cell through a switch matrix otherwise), ``repeats`` times
``interval_s`` apart; every cell's reading is committed as soon as the call returns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from protocols.analysis.extract import analyze_map, outlier_cells
from protocols.params import quantity, read_voltage, station_array
from protocols.plots import use_agg


class ConductanceMapParams(Params):
    array: str = quantity("A", "", "array to map")
    read_voltage_V: float = read_voltage()
    repeats: int = quantity(1, "", "number of maps", ge=1, le=100_000)
    interval_s: float = quantity(0.0, "s", "wait between maps", ge=0, le=1e9)


class ConductanceMap(Protocol):
    name = "conductance-map"
    title = "Read every cell of an array (conductance map)"
    Params = ConductanceMapParams
    analysis = staticmethod(analyze_map)

    def preflight(self, params: ConductanceMapParams, station: Station) -> None:
        station_array(station, params.array)
        station.limits.check_read_voltage(params.read_voltage_V)

    def execute(self, ctx: RunContext, params: ConductanceMapParams) -> None:
        ctx.progress.start(params.repeats, f"{self.name} of {params.array}")
        for k in range(params.repeats):
            if k and params.interval_s:
                ctx.backend.delay(params.interval_s)
            readout = ctx.backend.read(params.array, None, params.read_voltage_V)
            ctx.log_readout(readout, kind="map", step=k)
            g = readout.conductance_S
            ctx.progress.advance(1, status=f"median {np.median(g) * 1e6:.3g} uS")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        """The last map and its histogram, scaled to the population: colour limits at the 1st and
        99th percentiles of the cells that are not stuck (:func:`outlier_cells`; cells beyond
        them take the end colours), stuck cells marked with a red x and left out of the
        histogram (their count in its title)."""
        df = store.readings_df(run_id)
        df = df[df["kind"] == "map"]
        if df.empty:
            return None
        last = df[df["step"] == df["step"].max()]
        rows = int(last["row"].max()) + 1
        cols = int(last["col"].max()) + 1
        r, c = last["row"].to_numpy(), last["col"].to_numpy()
        g = last["conductance_S"].to_numpy(float) * 1e6
        grid = np.full((rows, cols), np.nan)
        grid[r, c] = g
        stuck = outlier_cells(g)
        population = g[~stuck & np.isfinite(g)]
        vmin, vmax = np.percentile(population, [1, 99]) if population.size else (None, None)
        plt = use_agg()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
        im = ax1.imshow(grid, cmap="viridis", origin="upper", interpolation="nearest", vmin=vmin, vmax=vmax)
        fig.colorbar(im, ax=ax1, label="conductance (uS)", extend="both")
        if stuck.any():
            ax1.plot(c[stuck], r[stuck], "x", color="red", ms=7, mew=1.5, label=f"stuck ({int(stuck.sum())})")
            ax1.legend(fontsize=8, loc="upper right")
        ax1.set(
            xlabel="column", ylabel="row", title=f"{last['array'].iloc[0]} at {last['voltage_V'].iloc[0]:g} V"
        )
        ax2.hist(population, bins=50, color="tab:blue")
        excluded = f", {int(stuck.sum())} stuck cell(s) not shown" if stuck.any() else ""
        median = float(np.median(population)) if population.size else float("nan")
        ax2.set(xlabel="conductance (uS)", ylabel="cells", title=f"median {median:.3g} uS{excluded}")
        fig.suptitle(f"run {run_id}: conductance map", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
