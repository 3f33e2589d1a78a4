"""Retention: program the devices, then read them at log-spaced times; resumable.

Methods: the devices get a strong reset (optional) and are read (kind ``retention-baseline``: the
level a decaying state relaxes to), then ``program_pulses`` potentiation pulses
(``amplitude_V`` / ``width_s``) take them up. They are read at once (``step`` 0) and then at
``points`` times log-spaced from ``t_first_s`` to ``t_last_s`` after programming (``step`` 1 to
``points``, kind ``retention``). Waiting is :meth:`Backend.delay`: simulated time on the twin
(instant), wall time on hardware. Each read is committed with a ``retention-read`` event holding
its time since programming (``elapsed_s``), and a checkpoint.

Times are measured on the backend clock (simulated on the twin, the instrument's clock on
hardware). Resume (`rram-hil resume RUN`): on hardware the devices kept their state, and the time
since programming is the wall-clock time since the programming recorded in the checkpoint. On the twin the
simulated devices do not outlive the process, so the resumed run first replays the reset and the
programming (same seed, same operations: the same devices in the same state, logged with
``purpose`` ``replay-*``) and then continues with the next scheduled read.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import model_validator

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import Pulse
from protocols.analysis.extract import analyze_retention, retention_table
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

KIND = "retention"
BASELINE = "retention-baseline"


class RetentionParams(Params):
    array: str = quantity("A", "", "array holding the device(s)")
    cells: str = quantity("0:4,0:4", "", "cells: 'R,C', 'R,C;R,C', ranges 'R0:R1,C0:C1' or 'all'")
    initial_reset: bool = quantity(True, "", "strong reset and baseline read before programming")
    reset_amplitude_V: float = reset_amplitude("strong-reset pulse amplitude")
    reset_width_s: float = reset_width()
    reset_pulses: int = reset_pulse_count()
    program_pulses: int = quantity(25, "", "potentiation pulses that program the devices", ge=0, le=100_000)
    amplitude_V: float = quantity(2.0, "V", "programming pulse amplitude", gt=0, le=20)
    width_s: float = quantity(100e-6, "s", "programming pulse width", gt=0, le=1)
    read_voltage_V: float = read_voltage()
    t_first_s: float = quantity(1.0, "s", "first read after programming", gt=0, le=1e12)
    t_last_s: float = quantity(1e6, "s", "last read after programming", gt=0, le=1e12)
    points: int = quantity(25, "", "log-spaced reads from t_first_s to t_last_s", ge=2, le=100_000)

    @model_validator(mode="after")
    def _times(self) -> RetentionParams:
        if self.t_last_s <= self.t_first_s:
            raise ValueError(f"t_last_s = {self.t_last_s:g} s must be > t_first_s = {self.t_first_s:g} s")
        return self

    def schedule(self) -> np.ndarray:
        """Read times after programming (s): 0, then ``points`` log-spaced ones."""
        return np.concatenate([[0.0], np.geomspace(self.t_first_s, self.t_last_s, self.points)])


class Retention(Protocol):
    name = "retention"
    title = "Program, then read at log-spaced times (simulated on the twin, wall time on hardware); resumable"
    Params = RetentionParams
    supports_resume = True
    analysis = staticmethod(analyze_retention)

    def preflight(self, params: RetentionParams, station: Station) -> None:
        parse_cells(params.cells, station_array(station, params.array))
        limits = station.limits
        if params.initial_reset:
            limits.check_pulse(
                Pulse(params.reset_amplitude_V, params.reset_width_s), params.reset_pulses, "reset_"
            )
        if params.program_pulses:
            limits.check_pulse(Pulse(params.amplitude_V, params.width_s), params.program_pulses)
        limits.check_read_voltage(params.read_voltage_V)

    def _program(self, ctx: RunContext, params: RetentionParams, cells: np.ndarray, replay: bool) -> None:
        backend = ctx.backend
        prefix = "replay-" if replay else ""
        if params.initial_reset:
            reset = Pulse(params.reset_amplitude_V, params.reset_width_s)
            strong_reset(ctx, params.array, cells, reset, params.reset_pulses, purpose=prefix + "reset")
            if not replay:
                ctx.log_readout(backend.read(params.array, cells, params.read_voltage_V), kind=BASELINE)
        if params.program_pulses:
            pulse = Pulse(params.amplitude_V, params.width_s)
            train = backend.pulse(params.array, cells, pulse, params.program_pulses)
            ctx.log_train(train, purpose=prefix + "program")

    def execute(self, ctx: RunContext, params: RetentionParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        schedule = params.schedule()
        simulated = backend.capabilities.simulated_time
        state = ctx.resume_state or {}
        start = int(state.get("next_point", 0))
        ctx.progress.start(len(schedule), f"{self.name}: {params.t_first_s:g} to {params.t_last_s:g} s")
        if start == 0:
            self._program(ctx, params, cells, replay=False)
            wall0 = time.time()
            t0 = backend.now()
        elif simulated:
            self._program(ctx, params, cells, replay=True)
            ctx.log_event("replayed-programming", reason="the twin's devices do not outlive the process")
            wall0 = time.time()
            t0 = backend.now()
        else:
            # the devices kept their state; the time since programming is wall time
            wall0 = float(state["t_prog_wall_s"])
            t0 = backend.now() - (time.time() - wall0)
        ctx.progress.advance(start)

        def elapsed() -> float:
            """Time since programming (s) on the backend clock (the devices' own time)."""
            return backend.now() - t0

        for k in range(start, len(schedule)):
            wait = float(schedule[k]) - elapsed()
            if wait > 0:
                backend.delay(wait)
            at = elapsed()
            readout = backend.read(params.array, cells, params.read_voltage_V)
            ctx.log_readout(readout, kind=KIND, step=k)
            ctx.log_event("retention-read", step=k, elapsed_s=at)
            ctx.checkpoint(next_point=k + 1, t_prog_wall_s=wall0)
            ctx.progress.advance(1, status=f"t = {at:.3g} s, G {np.mean(readout.conductance_S) * 1e6:.3g} uS")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        table = retention_table(store, run_id)
        if table.empty:
            return None
        plt = use_agg()
        fig, ax = plt.subplots(figsize=(8, 4.5))
        t = table.index.to_numpy()
        shown = np.maximum(t, t[t > 0].min() / 3 if (t > 0).any() else 1e-3)
        for col in table.columns[:32]:
            ax.semilogx(shown, table[col].to_numpy() * 1e6, "-", lw=0.5, alpha=0.5, color="tab:blue")
        ax.semilogx(shown, table.mean(axis=1).to_numpy() * 1e6, "k.-", lw=1.5, label="mean")
        ax.set(xlabel="time since programming (s; t = 0 drawn at the left)", ylabel="conductance (uS)",
               title=f"run {run_id}: retention")  # fmt: skip
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
