"""Endurance cycling: potentiation and strong reset, repeated until the devices fail or a count.

Methods: the building blocks of :mod:`protocols.potentiation` (a train of ``pulses`` identical
potentiation pulses, then the strong reset) repeat for up to ``cycles`` cycles, here without a
read after every pulse. Every ``read_every`` cycles each device is read after its potentiation
(kind ``endurance-set``) and after its reset (kind ``endurance-reset``). A device has *failed* at
the first read-out where its window ``G_set / G_reset`` falls below ``fail_ratio``; the run stops
when at least ``stop_fraction`` of the devices have failed (``stop_fraction = 1``: all of them) or
after ``cycles`` cycles. Each failure is committed as a ``device-failed`` event with its cycle.

On the twin, devices wear out only when the preset sets ``endurance_cycles`` (see
``sim_backend/wear.py``); the shipped Mo/TiOx preset leaves it off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hil.protocol import Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import Pulse
from protocols.analysis.extract import analyze_endurance
from protocols.params import parse_cells, quantity
from protocols.plots import use_agg
from protocols.potentiation import PotentiationCyclingParams, check_cycling
from protocols.steps import strong_reset

SET_KIND = "endurance-set"
RESET_KIND = "endurance-reset"


class EnduranceParams(PotentiationCyclingParams):
    pulses: int = quantity(
        50, "", "potentiation pulses per cycle (no read after each; see read_every)", ge=1, le=100_000
    )
    cycles: int = quantity(1000, "", "most cycles to run (the count)", ge=1, le=100_000_000)
    read_every: int = quantity(1, "", "read the devices every this many cycles", ge=1, le=1_000_000)
    fail_ratio: float = quantity(
        2.0, "", "a device has failed when G_set / G_reset falls below this", gt=1, le=1e6
    )
    stop_fraction: float = quantity(
        1.0, "", "stop when this fraction of the devices has failed (1: all)", gt=0, le=1
    )


class Endurance(Protocol):
    name = "endurance"
    title = "Potentiation + strong reset cycles until the devices fail or a count (endurance)"
    Params = EnduranceParams
    analysis = staticmethod(analyze_endurance)

    def preflight(self, params: EnduranceParams, station: Station) -> None:
        check_cycling(params, station)

    def execute(self, ctx: RunContext, params: EnduranceParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        set_pulse = Pulse(params.amplitude_V, params.width_s)
        reset = params.reset_pulse()
        failed_at = np.full(len(cells), -1, dtype=np.int64)
        ctx.progress.start(params.cycles, f"{self.name} on {params.array}, {len(cells)} cell(s)")
        if params.initial_reset:
            strong_reset(ctx, params.array, cells, reset, params.reset_pulses, cycle=-1)
        for cycle in range(params.cycles):
            read_now = cycle % params.read_every == 0 or cycle == params.cycles - 1
            train = backend.pulse(params.array, cells, set_pulse, params.pulses)
            ctx.log_train(train, purpose="potentiation", cycle=cycle)
            if read_now:
                g_set = backend.read(params.array, cells, params.read_voltage_V)
                ctx.log_readout(g_set, kind=SET_KIND, cycle=cycle)
            strong_reset(ctx, params.array, cells, reset, params.reset_pulses, cycle=cycle)
            status = ""
            if read_now:
                g_reset = backend.read(params.array, cells, params.read_voltage_V)
                ctx.log_readout(g_reset, kind=RESET_KIND, cycle=cycle)
                window = g_set.flat_conductance_S / np.maximum(g_reset.flat_conductance_S, 1e-30)
                newly = (failed_at < 0) & (window < params.fail_ratio)
                if newly.any():
                    failed_at[newly] = cycle
                    ctx.log_event(
                        "device-failed",
                        cycle=cycle,
                        cells=cells[newly].tolist(),
                        window=window[newly].tolist(),
                    )
                ctx.checkpoint(cycle=cycle, failed=int((failed_at >= 0).sum()))
                status = f"{int((failed_at >= 0).sum())}/{len(cells)} failed, window {np.median(window):.3g}"
            ctx.progress.advance(1, status=status or None)
            if (failed_at >= 0).mean() >= params.stop_fraction:
                ctx.log_event("stopped", reason="failure", cycle=cycle)
                break

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        df = df[df["kind"].isin([SET_KIND, RESET_KIND])]
        if df.empty:
            return None
        plt = use_agg()
        fig, ax = plt.subplots(figsize=(10, 4.5))
        for kind, marker in ((SET_KIND, "^"), (RESET_KIND, "v")):
            part = df[df["kind"] == kind]
            per = part.groupby("cycle")["conductance_S"]
            ax.semilogy(per.median().index + 1, per.median().to_numpy(), marker + "-", ms=3, lw=0.8,
                        label=f"{kind} (median)")  # fmt: skip
            ax.fill_between(per.min().index + 1, per.min().to_numpy(), per.max().to_numpy(), alpha=0.2)
        ax.set_xscale("log")
        ax.set(xlabel="cycle", ylabel="conductance (S)", title=f"run {run_id}: endurance (band: min-max)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
