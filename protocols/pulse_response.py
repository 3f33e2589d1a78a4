"""Pulse response: cycles of N potentiation then N depression pulses, with reads (Choi 2021, Fig. 3C).

Methods: the devices are first brought to Gmin with a strong reset (optional). Each of ``cycles``
cycles applies ``pulses`` identical potentiation pulses (``amplitude_V`` / ``width_s``), reading
every device at ``read_voltage_V`` after each pulse, then ``pulses`` identical depression pulses
(``depression_amplitude_V`` / ``depression_width_s``) with the same reads. The paper shows five
cycles of 100 + 100 pulses on devices of several diameters; with 50 states per device the
conductance saturates at Gmax and Gmin within each branch, which is what makes Gmin, Gmax, the
number of states and the nonlinearity of both branches measurable.

Readings: kind ``potentiation`` / ``depression``, ``cycle`` and ``pulse`` (0-based) set. Every
train is one backend call, committed before the next starts; several arrays (``arrays``) run one
after the other with the same scheme, which is how :mod:`protocols.area_scaling` uses it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import Pulse
from protocols.analysis.extract import analyze_cycling
from protocols.params import (
    parse_cells,
    quantity,
    read_voltage,
    reset_amplitude,
    reset_pulse_count,
    reset_width,
    selected_arrays,
    station_array,
)
from protocols.plots import use_agg
from protocols.steps import strong_reset

POTENTIATION = "potentiation"
DEPRESSION = "depression"


class PulseResponseParams(Params):
    arrays: str = quantity("A", "", "comma-separated arrays to run the scheme on, one after the other")
    cells: str = quantity("0,0", "", "cells in every array: 'R,C', 'R,C;R,C', 'R0:R1,C0:C1' or 'all'")
    cycles: int = quantity(5, "", "cycles of potentiation then depression", ge=1, le=100_000)
    pulses: int = quantity(100, "", "pulses per branch, each followed by a read", ge=1, le=100_000)
    amplitude_V: float = quantity(2.0, "V", "potentiation pulse amplitude", gt=0, le=20)
    width_s: float = quantity(100e-6, "s", "potentiation pulse width", gt=0, le=1)
    depression_amplitude_V: float = quantity(-2.0, "V", "depression pulse amplitude", ge=-20, lt=0)
    depression_width_s: float = quantity(100e-6, "s", "depression pulse width", gt=0, le=1)
    read_voltage_V: float = read_voltage()
    initial_reset: bool = quantity(True, "", "strong reset before the first cycle")
    reset_amplitude_V: float = reset_amplitude("initial strong-reset pulse amplitude")
    reset_width_s: float = reset_width("initial strong-reset pulse width")
    reset_pulses: int = reset_pulse_count("pulses in the initial strong-reset train")


def check_scheme(params: PulseResponseParams, station: Station, names: list[str]) -> None:
    """Every array and cell selection exists, every pulse and read is inside the station's limits."""
    for name in names:
        parse_cells(params.cells, station_array(station, name, "arrays"))
    limits = station.limits
    limits.check_pulse(Pulse(params.amplitude_V, params.width_s), params.pulses)
    limits.check_pulse(
        Pulse(params.depression_amplitude_V, params.depression_width_s), params.pulses, "depression_"
    )
    if params.initial_reset:
        limits.check_pulse(
            Pulse(params.reset_amplitude_V, params.reset_width_s), params.reset_pulses, "reset_"
        )
    limits.check_read_voltage(params.read_voltage_V)


def run_scheme(ctx: RunContext, params: PulseResponseParams, names: list[str], label: str) -> None:
    """Run the potentiation/depression cycles on every array in ``names``, logging everything."""
    backend = ctx.backend
    pot = Pulse(params.amplitude_V, params.width_s)
    dep = Pulse(params.depression_amplitude_V, params.depression_width_s)
    reset = Pulse(params.reset_amplitude_V, params.reset_width_s)
    ctx.progress.start(len(names) * params.cycles, label)
    for name in names:
        cells = parse_cells(params.cells, backend.spec(name))
        if params.initial_reset:
            strong_reset(ctx, name, cells, reset, params.reset_pulses, cycle=-1)
        for cycle in range(params.cycles):
            for pulse, kind in ((pot, POTENTIATION), (dep, DEPRESSION)):
                train = backend.pulse(
                    name, cells, pulse, params.pulses, read_after=True, read_voltage_V=params.read_voltage_V
                )
                ctx.log_train(train, purpose=kind, kind=kind, cycle=cycle)
            g = train.conductance_S
            assert g is not None
            ctx.progress.advance(1, status=f"{name}: cycle {cycle + 1}, G {np.mean(g[:, -1]) * 1e6:.3g} uS")


class PulseResponse(Protocol):
    name = "pulse-response"
    title = "Cycles of N potentiation then N depression pulses with reads, on one or more arrays (Fig. 3C)"
    Params = PulseResponseParams
    analysis = staticmethod(analyze_cycling)

    def preflight(self, params: PulseResponseParams, station: Station) -> None:
        check_scheme(params, station, selected_arrays(params.arrays, station))

    def execute(self, ctx: RunContext, params: PulseResponseParams) -> None:
        names = selected_arrays(params.arrays, ctx.station)
        run_scheme(ctx, params, names, f"{self.name}: {params.cycles} x ({params.pulses} + {params.pulses})")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        return plot_pulse_response(store, run_id, path, "pulse-response")


def draw_pulse_response(df: pd.DataFrame, ax: Axes) -> None:
    """Mean conductance of every array against pulse number along the run (log scale) on ``ax``."""
    for name, part in df.groupby("array", sort=False):
        n = int(part["pulse"].max()) + 1
        branch = (part["kind"] == DEPRESSION).to_numpy().astype(int)
        x = (part["cycle"].to_numpy() * 2 + branch) * n + part["pulse"].to_numpy() + 1
        mean = part.assign(x=x).groupby("x")["conductance_S"].mean()
        ax.semilogy(mean.index, mean.to_numpy(), ".-", ms=2, lw=0.6, label=str(name))
    ax.set(xlabel="pulse number", ylabel="conductance (S)")
    ax.legend(fontsize=8, loc="best")


def pulse_readings(store: Store, run_id: int) -> pd.DataFrame:
    df = store.readings_df(run_id)
    return df[df["kind"].isin([POTENTIATION, DEPRESSION])]


def plot_pulse_response(store: Store, run_id: int, path: Path, title: str) -> Path | None:
    """Conductance against pulse number, every array (mean of its cells) on one axis, log scale."""
    df = pulse_readings(store, run_id)
    if df.empty:
        return None
    plt = use_agg()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    draw_pulse_response(df, ax)
    ax.set_title(f"run {run_id}: {title}")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
