"""Potentiation cycling with strong reset (Choi et al. 2021, Fig. 3E).

Methods, as the paper has them: each of ``cycles`` cycles applies ``pulses`` identical
potentiation pulses (``amplitude_V``, ``width_s``) to the device, reading its conductance at
``read_voltage_V`` after every pulse, and then returns it near Gmin with a strong reset, a train of
``reset_pulses`` pulses of ``reset_amplitude_V`` / ``reset_width_s`` (five -4 V / 100 us pulses in
the paper). The paper's run is 30 cycles of 50 pulses: 1,500 readings per device.

Every train is one backend call (instrument-side where the hardware allows it); its pulses and
reads are committed before the next train starts. An interrupted run resumes at the first cycle
that did not complete, after a strong reset; the readings of the interrupted cycle are kept,
relabelled ``potentiation-interrupted``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
    station_array,
)
from protocols.plots import use_agg
from protocols.steps import strong_reset

KIND = "potentiation"


class PotentiationCyclingParams(Params):
    array: str = quantity("A", "", "array holding the device(s)")
    cells: str = quantity("0,0", "", "cells: 'R,C', 'R,C;R,C', ranges 'R0:R1,C0:C1' or 'all'")
    amplitude_V: float = quantity(2.0, "V", "potentiation pulse amplitude", gt=0, le=20)
    width_s: float = quantity(100e-6, "s", "potentiation pulse width", gt=0, le=1)
    pulses: int = quantity(50, "", "potentiation pulses per cycle, each followed by a read", ge=1, le=100_000)
    cycles: int = quantity(30, "", "number of cycles", ge=1, le=1_000_000)
    reset_amplitude_V: float = reset_amplitude()
    reset_width_s: float = reset_width()
    reset_pulses: int = reset_pulse_count()
    read_voltage_V: float = read_voltage()
    initial_reset: bool = quantity(True, "", "strong reset before the first cycle")

    def reset_pulse(self) -> Pulse:
        """One pulse of the strong reset (``reset_amplitude_V`` / ``reset_width_s``)."""
        return Pulse(self.reset_amplitude_V, self.reset_width_s)


def check_cycling(params: PotentiationCyclingParams, station: Station) -> None:
    """The array and cells exist; potentiation, strong reset and reads are inside the limits."""
    spec = station_array(station, params.array)
    parse_cells(params.cells, spec)
    limits = station.limits
    limits.check_pulse(Pulse(params.amplitude_V, params.width_s), params.pulses)
    limits.check_pulse(params.reset_pulse(), params.reset_pulses, "reset_")
    limits.check_read_voltage(params.read_voltage_V)


class PotentiationCycling(Protocol):
    name = "potentiation-cycling"
    title = "Cycles of identical potentiation pulses with reads, each ended by a strong reset (Fig. 3E)"
    Params = PotentiationCyclingParams
    supports_resume = True
    analysis = staticmethod(analyze_cycling)

    def preflight(self, params: PotentiationCyclingParams, station: Station) -> None:
        check_cycling(params, station)

    def execute(self, ctx: RunContext, params: PotentiationCyclingParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        set_pulse = Pulse(params.amplitude_V, params.width_s)

        start = 0
        if ctx.resume_state:
            start = int(ctx.resume_state.get("next_cycle", 0))
            self._relabel_interrupted(ctx, start)
        ctx.progress.start(params.cycles, f"{self.name} on {params.array}, {len(cells)} cell(s)")
        ctx.progress.advance(start)

        reset = params.reset_pulse()
        if params.initial_reset or start > 0:
            strong_reset(
                ctx, params.array, cells, reset, params.reset_pulses, cycle=start - 1 if start > 0 else -1
            )

        for cycle in range(start, params.cycles):
            train = backend.pulse(
                params.array,
                cells,
                set_pulse,
                params.pulses,
                read_after=True,
                read_voltage_V=params.read_voltage_V,
            )
            ctx.log_train(train, purpose="potentiation", kind=KIND, cycle=cycle)
            # the reset and the progress it completes land together
            strong_reset(
                ctx, params.array, cells, reset, params.reset_pulses,
                checkpoint={"next_cycle": cycle + 1}, cycle=cycle,
            )  # fmt: skip
            g = train.conductance_S
            assert g is not None
            ctx.progress.advance(1, status=f"G {g[:, -1].mean() * 1e6:.2f} uS after {params.pulses} pulses")

    @staticmethod
    def _relabel_interrupted(ctx: RunContext, cycle: int) -> None:
        """Keep, but set apart, the readings of the cycle that was cut short."""
        ctx.store.relabel_readings(ctx.run_id, KIND, f"{KIND}-interrupted", cycle=cycle)

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        df = df[df["kind"] == KIND]
        if df.empty:
            return None
        plt = use_agg()
        info = store.run(run_id)
        per_pulse = df.groupby(["cycle", "pulse"], sort=True)["conductance_S"].mean().unstack("pulse")
        g_uS = per_pulse.to_numpy() * 1e6
        n_cycles, n_pulses = g_uS.shape
        curves = df.pivot_table(
            index=["array", "row", "col", "cycle"], columns="pulse", values="conductance_S"
        )
        steps = np.diff(curves.to_numpy(), axis=1)
        mu = float(np.nanmean(steps))
        # programming variability: spread of each step around the mean step at that pulse number
        sigma = float(np.nanstd(steps - np.nanmean(steps, axis=0, keepdims=True)))
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
        cmap = plt.get_cmap("viridis")
        for k in range(n_cycles):
            x = k * n_pulses + np.arange(1, n_pulses + 1)
            ax1.plot(x, g_uS[k], ".", ms=2.5, color=cmap(k / max(n_cycles - 1, 1)))
        ax1.set_xlabel("pulse number")
        ax1.set_ylabel("conductance (uS)")
        n_cells = df.groupby(["array", "row", "col"]).ngroups
        who = f"{n_cells} cells (mean)" if n_cells > 1 else f"cell ({df['row'].iloc[0]}, {df['col'].iloc[0]})"
        p = info.parameters
        ax1.set_title(
            f"run {run_id}: {n_cycles} cycles x {n_pulses} pulses ({p['amplitude_V']:g} V / "
            f"{p['width_s'] * 1e6:g} us), strong reset {p['reset_pulses']} x "
            f"{p['reset_amplitude_V']:g} V / {p['reset_width_s'] * 1e6:g} us\n{p['array']} {who}",
            fontsize=9,
        )
        pulses = np.arange(1, n_pulses + 1)
        for k in range(n_cycles):
            ax2.plot(pulses, g_uS[k], "-", lw=0.6, alpha=0.5, color=cmap(k / max(n_cycles - 1, 1)))
        ax2.plot(pulses, np.nanmean(g_uS, axis=0), "k-", lw=2, label="mean of cycles")
        ax2.set_xlabel("pulse in cycle")
        ax2.set_ylabel("conductance (uS)")
        ax2.legend(loc="lower right", fontsize=8)
        ax2.text(
            0.03, 0.97,
            f"Gmin {np.nanmin(g_uS):.3g} uS\nGmax {np.nanmax(g_uS):.3g} uS\n"
            f"step mu {mu * 1e6:.3g} uS\nsigma/mu {sigma / mu if mu else float('nan'):.2f}",
            transform=ax2.transAxes, va="top", fontsize=8,
            bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8},
        )  # fmt: skip
        ax2.set_title("cycles overlaid", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
