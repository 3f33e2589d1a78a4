"""Switching-threshold search: pulses of rising amplitude until the conductance moves by a set amount.

Methods: the devices are preconditioned (``precondition``: a strong reset before a ``set`` search,
``precondition_pulses`` potentiation pulses before a ``reset`` search, or nothing) and read
(``step`` -1, the reference ``G0``). Then single pulses of amplitude ``v_start_V``,
``v_start_V + v_step_V``, ... up to ``v_stop_V`` (negative amplitudes for ``polarity=reset``) and
width ``width_s`` are applied, each followed by a read (kind ``threshold``, ``step`` = amplitude
index). A device's threshold is the first amplitude after which ``|G - G0| >= delta_rel * G0``; it
gets no further pulses. Devices that never move are reported as not switched up to ``v_stop_V``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import model_validator

from hil.protocol import Params, Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import Pulse
from protocols.analysis.extract import analyze_threshold
from protocols.params import (
    parse_cells,
    quantity,
    read_voltage,
    reset_amplitude,
    reset_pulse_count,
    station_array,
)
from protocols.plots import use_agg
from protocols.steps import strong_reset

KIND = "threshold"


class ThresholdSearchParams(Params):
    array: str = quantity("A", "", "array holding the device(s)")
    cells: str = quantity("0:4,0:4", "", "cells: 'R,C', 'R,C;R,C', ranges 'R0:R1,C0:C1' or 'all'")
    polarity: Literal["set", "reset"] = quantity(
        "set", "", "search the set (positive) or reset (negative) threshold"
    )
    v_start_V: float = quantity(0.2, "V", "first |amplitude|", gt=0, le=50)
    v_stop_V: float = quantity(3.0, "V", "last |amplitude| (the limit)", gt=0, le=50)
    v_step_V: float = quantity(0.05, "V", "amplitude step", gt=0, le=10)
    width_s: float = quantity(100e-6, "s", "pulse width", gt=0, le=1)
    delta_rel: float = quantity(
        0.02, "", "relative conductance change that counts as switching", gt=0, le=100
    )
    read_voltage_V: float = read_voltage()
    precondition: Literal["auto", "none"] = quantity(
        "auto", "", "auto: strong reset before a set search, potentiation before a reset search"
    )
    precondition_pulses: int = quantity(
        100, "", "potentiation pulses before a reset search", ge=1, le=100_000
    )
    precondition_amplitude_V: float = quantity(
        2.0, "V", "|amplitude| of the preconditioning pulses", gt=0, le=20
    )
    reset_amplitude_V: float = reset_amplitude("strong-reset amplitude before a set search")
    reset_pulses: int = reset_pulse_count("strong-reset pulses before a set search")

    @model_validator(mode="after")
    def _ramp(self) -> ThresholdSearchParams:
        if self.v_stop_V < self.v_start_V:
            raise ValueError(f"v_stop_V = {self.v_stop_V:g} V must be >= v_start_V = {self.v_start_V:g} V")
        if (self.v_stop_V - self.v_start_V) / self.v_step_V > 100_000:
            raise ValueError("v_step_V gives more than 100000 amplitudes")
        return self

    def amplitudes(self) -> np.ndarray:
        """Signed amplitudes (V) of the search, in order."""
        n = int(np.floor((self.v_stop_V - self.v_start_V) / self.v_step_V + 1e-9))
        a = np.round(self.v_start_V + self.v_step_V * np.arange(n + 1), 9)
        return a if self.polarity == "set" else -a


class ThresholdSearch(Protocol):
    name = "threshold-search"
    title = "Pulses of rising amplitude until the conductance moves by a set amount (switching threshold)"
    Params = ThresholdSearchParams
    analysis = staticmethod(analyze_threshold)

    def preflight(self, params: ThresholdSearchParams, station: Station) -> None:
        parse_cells(params.cells, station_array(station, params.array))
        limits = station.limits
        amps = params.amplitudes()
        limits.check_voltage(float(amps[-1]), "v_stop_V")
        limits.check_width(params.width_s)
        if params.precondition == "auto":
            if params.polarity == "set":
                limits.check_pulse(
                    Pulse(params.reset_amplitude_V, params.width_s), params.reset_pulses, "reset_"
                )
            else:
                limits.check_pulse(
                    Pulse(params.precondition_amplitude_V, params.width_s),
                    params.precondition_pulses,
                    "precondition_",
                )
        limits.check_read_voltage(params.read_voltage_V)

    def execute(self, ctx: RunContext, params: ThresholdSearchParams) -> None:
        backend = ctx.backend
        cells = parse_cells(params.cells, backend.spec(params.array))
        if params.precondition == "auto":
            if params.polarity == "set":
                reset = Pulse(params.reset_amplitude_V, params.width_s)
                strong_reset(ctx, params.array, cells, reset, params.reset_pulses, purpose="precondition")
            else:
                pre = Pulse(params.precondition_amplitude_V, params.width_s)
                ctx.log_train(
                    backend.pulse(params.array, cells, pre, params.precondition_pulses),
                    purpose="precondition",
                )
        ref = backend.read(params.array, cells, params.read_voltage_V)
        ctx.log_readout(ref, kind=KIND, step=-1)
        g0 = ref.flat_conductance_S
        active = np.ones(len(cells), dtype=bool)
        threshold = np.full(len(cells), np.nan)
        amps = params.amplitudes()
        ctx.progress.start(len(amps), f"{self.name} ({params.polarity})")
        for k, amp in enumerate(amps):
            train = backend.pulse(
                params.array,
                cells[active],
                Pulse(float(amp), params.width_s),
                1,
                read_after=True,
                read_voltage_V=params.read_voltage_V,
            )
            ctx.log_train(train, purpose="threshold", kind=KIND, step=k)
            assert train.conductance_S is not None
            g = train.conductance_S[:, 0]
            idx = np.flatnonzero(active)
            moved = np.abs(g - g0[idx]) >= params.delta_rel * g0[idx]
            threshold[idx[moved]] = amp
            active[idx[moved]] = False
            ctx.progress.advance(1, status=f"{amp:+.3g} V: {int((~active).sum())}/{len(cells)} switched")
            if not active.any():
                break
        ctx.log_event(
            "thresholds",
            cells=cells.tolist(),
            threshold_V=[None if np.isnan(v) else float(v) for v in threshold],
            limit_V=float(amps[-1]),
        )

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        df = df[df["kind"] == KIND]
        if df.empty:
            return None
        params = ThresholdSearchParams.model_validate(store.run(run_id).parameters)
        amps = params.amplitudes()
        plt = use_agg()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        for _, part in df.groupby(["row", "col"]):
            g0 = part[part["step"] == -1]["conductance_S"].iloc[0]
            p = part[part["step"] >= 0]
            ax1.plot(
                amps[p["step"].to_numpy()], (p["conductance_S"].to_numpy() / g0 - 1) * 100, ".-", lw=0.5, ms=2
            )
        ax1.axhline(params.delta_rel * 100, color="k", ls="--", lw=0.8, label="switching criterion")
        ax1.set(xlabel="pulse amplitude (V)", ylabel="(G - G0) / G0 (%)", title="conductance change")
        ax1.legend(fontsize=8)
        events = store.events_df(run_id)
        found = events[events["kind"] == "thresholds"]
        if not found.empty:
            values = [v for v in found["detail"].iloc[0]["threshold_V"] if v is not None]
            if values:
                ax2.hist(values, bins=max(5, len(set(values))), color="tab:blue")
        ax2.set(xlabel="threshold (V)", ylabel="devices", title="thresholds")
        fig.suptitle(f"run {run_id}: threshold-search ({params.polarity})", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
