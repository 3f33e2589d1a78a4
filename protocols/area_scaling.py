"""Area-scaling study: the same pulse scheme on devices of several diameters (Choi 2021, Fig. 3C/D).

Methods: the pulse-response scheme of :mod:`protocols.pulse_response` (cycles of N potentiation
then N depression pulses with reads) runs unchanged on one array per device size. On the twin,
``arrays=auto`` fabricates one ``rows x cols`` array per diameter in ``diameters_nm`` (30 nm to 1 um
in the paper), named ``D30nm``, ``D100nm``, ...; on hardware, ``arrays`` names the station's arrays
of different device areas (each array's area comes from the station file).

`rram-hil analyze RUN` then fits the log-log slope of the conductance range and of the mean step
per pulse against device area (Fig. 3D): interfacial switching gives a slope of about 1.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import field_validator

from hil.protocol import Protocol, RunContext
from hil.station import Station
from hil.store import Store
from hil.types import ArrayRequest, ArraySpec
from protocols.analysis.extract import analyze, analyze_cycling
from protocols.params import quantity, selected_arrays
from protocols.plots import use_agg
from protocols.pulse_response import (
    PulseResponseParams,
    check_scheme,
    draw_pulse_response,
    pulse_readings,
    run_scheme,
)


class AreaScalingParams(PulseResponseParams):
    arrays: str = quantity(
        "auto", "", "'auto' (twin: one array per diameter) or comma-separated arrays of different areas"
    )
    cells: str = quantity("all", "", "cells in every array: 'R,C', 'R,C;R,C', 'R0:R1,C0:C1' or 'all'")
    diameters_nm: str = quantity(
        "30,100,300,1000", "nm", "device diameters of the arrays fabricated with arrays=auto"
    )
    rows: int = quantity(4, "", "rows of each fabricated array (arrays=auto)", ge=1, le=1024)
    cols: int = quantity(4, "", "columns of each fabricated array (arrays=auto)", ge=1, le=1024)

    @field_validator("diameters_nm")
    @classmethod
    def _diameters(cls, text: str) -> str:
        values = diameters(text)
        if len(values) < 2:
            raise ValueError("give at least two diameters (comma-separated, in nm)")
        bad = [v for v in values if not (1.0 <= v <= 1e6)]
        if bad:
            raise ValueError(f"diameter {bad[0]:g} nm is outside 1 to 1e6 nm")
        if len(set(values)) != len(values):
            raise ValueError("diameters must differ")
        return text


def diameters(text: str) -> list[float]:
    """Diameters (nm) from a comma-separated list."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"'{text}' is not a comma-separated list of numbers") from None


def array_name(diameter_nm: float) -> str:
    """Name of the fabricated array of devices of ``diameter_nm``: ``D30nm``, ``D1000nm``, ``D42.5nm``."""
    return f"D{diameter_nm:g}nm"


def fabricated(params: AreaScalingParams) -> list[ArraySpec]:
    return [
        ArraySpec(array_name(d), params.rows, params.cols, math.pi * (d * 1e-9 / 2) ** 2)
        for d in diameters(params.diameters_nm)
    ]


def _names(params: AreaScalingParams, station: Station) -> list[str]:
    if params.arrays.strip().lower() == "auto":
        return [s.name for s in fabricated(params)]
    return selected_arrays(params.arrays, station)


class AreaScaling(Protocol):
    name = "area-scaling"
    title = "The same pulse scheme on devices of several diameters: range and step against area (Fig. 3C/D)"
    Params = AreaScalingParams
    analysis = staticmethod(analyze_cycling)

    def required_arrays(self, params: AreaScalingParams, station: Station) -> list[ArrayRequest]:
        if params.arrays.strip().lower() != "auto":
            return []
        return [ArrayRequest(spec) for spec in fabricated(params)]

    def preflight(self, params: AreaScalingParams, station: Station) -> None:
        names = _names(params, station)
        check_scheme(params, station, names)

    def execute(self, ctx: RunContext, params: AreaScalingParams) -> None:
        names = _names(params, ctx.station)
        # largest devices first, as the sizes are listed in the station
        run_scheme(ctx, params, names, f"{self.name}: {len(names)} device sizes")

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = pulse_readings(store, run_id)
        if df.empty:
            return None
        result = analyze(store, run_id)
        table = result.tables.get("per_array")
        plt = use_agg()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [2, 1]})
        draw_pulse_response(df, ax1)
        ax1.set_title("pulse response of every size (Fig. 3C)", fontsize=9)
        if table is not None and not table.empty:
            a = table["area_m2"].to_numpy()
            s = result.summary
            ax2.loglog(a, table["g_range_S"], "o-", label=f"Gmax - Gmin, slope {s['area_slope_range']:.2f}")
            ax2.loglog(a, table["step_mean_S"], "s-", label=f"mean step, slope {s['area_slope_step']:.2f}")
            ax2.set(xlabel="device area (m^2)", ylabel="conductance (S)")
            ax2.set_title("scaling with area (Fig. 3D)", fontsize=9)
            ax2.legend(fontsize=8)
        fig.suptitle(f"run {run_id}: area-scaling", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
