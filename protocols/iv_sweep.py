"""DC I-V sweep with current compliance (Choi et al. 2021, Fig. 3B).

Methods: the device's conductance is read at ``readout_V`` (0.5 V in the paper); the source then
steps from ``v_start_V`` to ``v_stop_V`` in ``v_step_V`` steps (0 to 3 V in 30 mV steps, about
100 points, in the paper), holding each point for ``dwell_s`` with the current limited to
``compliance_A``, and, with ``return_sweep``, steps back down (the hysteresis of a gradual
potentiation); the conductance is read again at ``readout_V``. Run on devices of several areas
(``arrays``), the current *density* collapses onto one curve for interfacial switching.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import model_validator

from hil.errors import ConfigError
from hil.protocol import Params, Protocol, RunContext
from hil.station import Station, parse_station
from hil.store import Store
from protocols.analysis.extract import analyze_iv_sweep
from protocols.params import quantity, read_voltage, station_array
from protocols.plots import use_agg
from protocols.steps import check_sweep_steps, signed_extreme, sweep_iv, sweep_points


class IVSweepParams(Params):
    arrays: str = quantity("all", "", "comma-separated arrays to sweep one device of, or 'all'")
    row: int = quantity(0, "", "row of the device in each array", ge=0)
    col: int = quantity(0, "", "column of the device in each array", ge=0)
    v_start_V: float = quantity(0.0, "V", "first voltage of the sweep", ge=-50, le=50)
    v_stop_V: float = quantity(3.0, "V", "turning voltage of the sweep", ge=-50, le=50)
    v_step_V: float = quantity(0.03, "V", "voltage step", gt=0, le=10)
    return_sweep: bool = quantity(True, "", "sweep back to v_start_V (hysteresis)")
    compliance_A: float = quantity(1e-3, "A", "current compliance", gt=0, le=10)
    dwell_s: float = quantity(1e-3, "s", "time at each point", gt=0, le=60)
    readout_V: float = read_voltage("read-out voltage before and after the sweep")
    cycles: int = quantity(1, "", "number of sweeps", ge=1, le=10_000)

    @model_validator(mode="after")
    def _points(self) -> IVSweepParams:
        check_sweep_steps(self.v_start_V, self.v_stop_V, self.v_step_V)
        return self

    def voltages(self) -> np.ndarray:
        """The sweep's voltages (V), with the return sweep if asked for."""
        return sweep_points(self.v_start_V, self.v_stop_V, self.v_step_V, self.return_sweep)


def _selected(params: IVSweepParams, station: Station) -> list[str]:
    if params.arrays.strip().lower() == "all":
        return [a.name for a in station.arrays]
    names = [n.strip() for n in params.arrays.split(",") if n.strip()]
    if not names:
        raise ConfigError("arrays: give at least one array name, or 'all'")
    return names


class IVSweep(Protocol):
    name = "iv-sweep"
    title = "DC I-V sweep with compliance and 0.5 V read-out, on devices of several areas (Fig. 3B)"
    Params = IVSweepParams
    analysis = staticmethod(analyze_iv_sweep)

    def preflight(self, params: IVSweepParams, station: Station) -> None:
        for name in _selected(params, station):
            spec = station_array(station, name, "arrays")
            if params.row >= spec.rows or params.col >= spec.cols:
                raise ConfigError(
                    f"row/col: ({params.row}, {params.col}) is outside array '{name}' "
                    f"(rows 0..{spec.rows - 1}, cols 0..{spec.cols - 1})"
                )
        limits = station.limits
        peak = signed_extreme(params.voltages())
        limits.check_voltage(
            peak, "v_stop_V" if abs(params.v_stop_V) >= abs(params.v_start_V) else "v_start_V"
        )
        limits.check_compliance(params.compliance_A)
        limits.check_dwell(params.dwell_s)
        limits.check_read_voltage(params.readout_V, "readout_V")

    def execute(self, ctx: RunContext, params: IVSweepParams) -> None:
        names = _selected(params, ctx.station)
        volts = params.voltages()
        cell = [(params.row, params.col)]
        ctx.progress.start(len(names) * params.cycles, f"{self.name}: {len(volts)} points per sweep")
        for cycle in range(params.cycles):
            for name in names:
                ctx.log_readout(
                    ctx.backend.read(name, cell, params.readout_V), kind="readout", cycle=cycle, step=0
                )
                ctx.log_event("compliance", array=name, compliance_A=params.compliance_A)
                iv = sweep_iv(
                    ctx, name, params.row, params.col, volts, params.compliance_A, params.dwell_s,
                    kind="iv", cycle=cycle, step=np.arange(len(volts)),
                )  # fmt: skip
                ctx.log_readout(
                    ctx.backend.read(name, cell, params.readout_V), kind="readout", cycle=cycle, step=1
                )
                ctx.progress.advance(1, status=f"{name}: {int(iv.in_compliance.sum())} points in compliance")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        iv = df[df["kind"] == "iv"]
        if iv.empty:
            return None
        station = parse_station(store.run(run_id).station, f"run {run_id}")
        area = {a.name: a.device_area_m2 for a in station.arrays}
        plt = use_agg()
        fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
        for (name, cycle), part in iv.groupby(["array", "cycle"], sort=False):
            a = area[name]
            d_nm = 2 * np.sqrt(a / np.pi) * 1e9
            label = f"{name} ({d_nm:.0f} nm)" + (f" #{cycle}" if iv["cycle"].nunique() > 1 else "")
            current = np.abs(part["current_A"].to_numpy())
            axes[0].semilogy(part["voltage_V"], np.maximum(current, 1e-15), "-", lw=1, label=label)
            axes[1].semilogy(part["voltage_V"], np.maximum(current / a * 1e-4, 1e-15), "-", lw=1, label=label)
        axes[0].set(xlabel="voltage (V)", ylabel="|current| (A)", title="DC I-V")
        axes[1].set(xlabel="voltage (V)", ylabel="|current density| (A/cm^2)", title="current density")
        axes[0].legend(fontsize=7)
        ro = df[df["kind"] == "readout"]
        for step, marker, label in ((0, "o", "before sweep"), (1, "s", "after sweep")):
            part = ro[ro["step"] == step]
            d = np.array([2 * np.sqrt(area[n] / np.pi) * 1e9 for n in part["array"]])
            j = part["current_A"].to_numpy() / np.array([area[n] for n in part["array"]]) * 1e-4
            axes[2].loglog(d, np.abs(j), marker, label=label)
        v_read = float(ro["voltage_V"].iloc[0]) if not ro.empty else float("nan")
        axes[2].set(xlabel="device diameter (nm)", ylabel=f"current density at {v_read:g} V (A/cm^2)",
                    title="read-out current density vs size")  # fmt: skip
        axes[2].legend(fontsize=7)
        fig.suptitle(f"run {run_id}: iv-sweep", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
