"""Write-verify: program cells (or a whole array) to target conductances within a tolerance.

Methods: every iteration reads the selected cells at ``read_voltage_V`` (kind ``verify``, ``step``
= iteration; the last read, the one that decides, is kind ``verify-final``). A cell is *converged* when ``|G - target| <= tolerance_rel * target``. Every other
cell gets ``round(|G - target| / step)`` pulses (at least 1, at most ``max_pulses_per_iteration``):
potentiation pulses (``amplitude_V`` / ``width_s``) if it is below its target, depression pulses
(``depression_amplitude_V`` / ``depression_width_s``) if above. All cells of one polarity are
programmed in one call (a pulse-count matrix: in parallel where the backend allows). The step per
pulse starts at ``step_estimate_S`` and is re-estimated after every iteration as the median
``|dG| / pulses`` of the cells that moved (one estimate per polarity). The run ends when every
cell is converged or after ``max_iterations`` programming iterations; the cells still outside the
tolerance are reported (a ``write-verify-result`` event lists them).

Targets: ``target_S`` for every cell; with ``target_max_S`` the targets spread evenly from
``target_S`` to ``target_max_S`` over the selected cells (in their order); or ``targets_file``, a
CSV matrix of the array's shape in siemens (empty or NaN: cell not programmed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import model_validator

from hil.errors import ConfigError
from hil.protocol import Params, Protocol, RunContext
from hil.safety import LimitError, SafetyLimits
from hil.station import Station
from hil.store import Store
from hil.types import ArraySpec, Pulse
from protocols.analysis.extract import analyze_write_verify
from protocols.params import parse_cells, quantity, read_voltage, station_array
from protocols.plots import use_agg

KIND = "verify"
FINAL = "verify-final"


class WriteVerifyParams(Params):
    array: str = quantity("A", "", "array to program")
    cells: str = quantity("0:4,0:4", "", "cells: 'R,C', 'R,C;R,C', ranges 'R0:R1,C0:C1' or 'all'")
    target_S: float = quantity(20e-6, "S", "target conductance (the first one with target_max_S)", gt=0, le=1)
    target_max_S: float | None = quantity(
        None, "S", "last target: spread targets evenly up to it", gt=0, le=1
    )
    targets_file: str | None = quantity(None, "", "CSV matrix of targets (S) of the array's shape; NaN: skip")
    tolerance_rel: float = quantity(
        0.05, "", "converged when |G - target| <= tolerance_rel * target", gt=0, le=1
    )
    max_iterations: int = quantity(30, "", "most read-program iterations", ge=1, le=100_000)
    max_pulses_per_iteration: int = quantity(
        20, "", "most pulses a cell gets in one iteration", ge=1, le=100_000
    )
    step_estimate_S: float = quantity(
        0.5e-6, "S", "first guess of the conductance step per pulse", gt=0, le=1
    )
    amplitude_V: float = quantity(1.6, "V", "potentiation pulse amplitude", gt=0, le=20)
    width_s: float = quantity(100e-6, "s", "potentiation pulse width", gt=0, le=1)
    depression_amplitude_V: float = quantity(-1.6, "V", "depression pulse amplitude", ge=-20, lt=0)
    depression_width_s: float = quantity(100e-6, "s", "depression pulse width", gt=0, le=1)
    read_voltage_V: float = read_voltage()

    @model_validator(mode="after")
    def _targets(self) -> WriteVerifyParams:
        if self.targets_file is not None and self.target_max_S is not None:
            raise ValueError("give targets_file or target_max_S, not both")
        return self


def load_targets(params: WriteVerifyParams, spec: ArraySpec, cells: np.ndarray) -> np.ndarray:
    """Target conductance (S) of every selected cell; NaN where the targets file skips it."""
    n = len(cells)
    if params.targets_file is not None:
        path = Path(params.targets_file)
        try:
            matrix = np.genfromtxt(path, delimiter=",", dtype=float, ndmin=2)
        except OSError:
            raise ConfigError(f"targets_file: '{path}' cannot be read") from None
        except ValueError as exc:
            raise ConfigError(f"targets_file: '{path}' is not a numeric CSV matrix ({exc})") from None
        if matrix.shape != spec.shape:
            raise ConfigError(
                f"targets_file: '{path}' holds a {matrix.shape[0]} x {matrix.shape[1]} matrix; "
                f"array '{spec.name}' is {spec.rows} x {spec.cols}"
            )
        targets = matrix[cells[:, 0], cells[:, 1]]
        bad = np.isfinite(targets) & ((targets <= 0) | (targets > 1))
        if bad.any():
            r, c = cells[np.argmax(bad)]
            raise ConfigError(
                f"targets_file: target at ({r}, {c}) = {targets[bad][0]:g} S; allowed: 0 < target <= 1 S"
            )
        return targets
    if params.target_max_S is not None:
        return np.linspace(params.target_S, params.target_max_S, n)
    return np.full(n, params.target_S)


def check_targets_readable(targets: np.ndarray, params: WriteVerifyParams, limits: SafetyLimits) -> None:
    """Refuse targets the station cannot read: a cell at ``G`` draws ``G * read_voltage_V`` at a
    read, so no target above ``max_compliance_A / |read_voltage_V|`` can ever be verified (e.g.
    ``target_S=1``: 0.5 A at 0.5 V). The check names the parameter the largest target came from."""
    finite = targets[np.isfinite(targets)]
    if not finite.size:
        return
    highest = float(finite.max())
    most = limits.max_compliance_A / abs(params.read_voltage_V)
    if highest > most:
        name = (
            "targets_file"
            if params.targets_file is not None
            else (
                "target_max_S"
                if params.target_max_S is not None and params.target_max_S >= params.target_S
                else "target_S"
            )
        )
        raise LimitError(
            name,
            highest,
            f"0 < {name} <= {most:g} S (a read at read_voltage_V {params.read_voltage_V:g} V within "
            f"{limits.max_compliance_A:g} A)",
            "max_compliance_A",
        )


def _target_name(params: WriteVerifyParams, largest: bool) -> str:
    """The parameter the highest (or lowest) target came from."""
    if params.targets_file is not None:
        return "targets_file"
    if params.target_max_S is None:
        return "target_S"
    high_is_max = params.target_max_S >= params.target_S
    return "target_max_S" if high_is_max == largest else "target_S"


def check_targets_in_window(
    targets: np.ndarray, params: WriteVerifyParams, window_S: tuple[float, float] | None
) -> None:
    """Refuse targets outside the array's calibrated window ``(Gmin, Gmax)`` (the station's
    ``arrays[].window_S``; the twin knows its own): no cell can be programmed there, and the run
    would end "0/N within tolerance" after every iteration. Unknown window: nothing to check."""
    finite = targets[np.isfinite(targets)]
    if window_S is None or not finite.size:
        return
    lo, hi = window_S
    for value, largest in ((float(finite.max()), True), (float(finite.min()), False)):
        if not lo <= value <= hi:
            name = _target_name(params, largest)
            raise LimitError(
                name,
                value,
                f"{lo:.4g} S <= {name} <= {hi:.4g} S (the array's calibrated window)",
                f"arrays.{params.array}.window_S",
            )


def correction_pulses(
    error_S: np.ndarray,
    step_S: float,
    most: int,
    *,
    fraction: float = 1.0,
    rounding: Literal["nearest", "down"] = "nearest",
    dead_band_steps: float | None = None,
) -> np.ndarray:
    """The write-verify correction: pulses that close a conductance error at ``step_S`` per pulse.

    ``n = rounding(fraction * |error_S| / step_S)``, at least 1 and at most ``most``; with
    ``dead_band_steps``, no pulse where ``|error_S| / step_S`` is not above it (the cell counts as
    there). The pulses' polarity is the caller's: the sign of the error.

    The callers' choices: this protocol aims at the whole error (``nearest``, no dead band; its
    tolerance decides convergence); the training protocol's write-verify, potentiation only,
    aims at 3/4 of the shortfall on the first pass and ``floor`` of it later (``down``), with a
    dead band of half a step, so that passes converge from below (see
    :func:`protocols.training.devices.verify_pulses`).
    """
    steps = np.abs(error_S) / step_S
    scaled = fraction * steps
    aim = np.rint(scaled) if rounding == "nearest" else np.floor(scaled)
    n = np.minimum(np.maximum(aim, 1.0), most)
    if dead_band_steps is not None:
        n = np.where(steps > dead_band_steps, n, 0.0)
    return n.astype(np.int64)


def pulse_counts(error_S: np.ndarray, step_S: float, most: int) -> np.ndarray:
    """Pulses that close ``|error_S|`` at ``step_S`` per pulse: ``round(|e| / step)`` in ``[1, most]``."""
    return correction_pulses(error_S, step_S, most)


class WriteVerify(Protocol):
    name = "write-verify"
    title = "Program cells to target conductances within a tolerance (read, pulse, repeat); report misses"
    Params = WriteVerifyParams
    analysis = staticmethod(analyze_write_verify)

    def preflight(self, params: WriteVerifyParams, station: Station) -> None:
        spec = station_array(station, params.array)
        cells = parse_cells(params.cells, spec)
        targets = load_targets(params, spec, cells)
        limits = station.limits
        check_targets_readable(targets, params, limits)
        window = next(a.window_S for a in station.arrays if a.name == spec.name)
        check_targets_in_window(targets, params, window)
        limits.check_pulse(Pulse(params.amplitude_V, params.width_s), params.max_pulses_per_iteration)
        limits.check_pulse(
            Pulse(params.depression_amplitude_V, params.depression_width_s),
            params.max_pulses_per_iteration,
            "depression_",
        )
        limits.check_read_voltage(params.read_voltage_V)

    def execute(self, ctx: RunContext, params: WriteVerifyParams) -> None:
        backend = ctx.backend
        spec = backend.spec(params.array)
        all_cells = parse_cells(params.cells, spec)
        all_targets = load_targets(params, spec, all_cells)
        keep = np.isfinite(all_targets)
        cells, targets = all_cells[keep], all_targets[keep]
        ctx.log_event(
            "targets",
            cells=cells.tolist(),
            target_S=targets.tolist(),
            tolerance_rel=params.tolerance_rel,
        )
        set_pulse = Pulse(params.amplitude_V, params.width_s)
        reset_pulse = Pulse(params.depression_amplitude_V, params.depression_width_s)
        step = {"set": params.step_estimate_S, "reset": params.step_estimate_S}
        ctx.progress.start(params.max_iterations + 1, f"{self.name}: {len(cells)} cell(s)")
        last_g: np.ndarray | None = None
        last_counts = np.zeros(len(cells), dtype=np.int64)
        last_sign = np.zeros(len(cells))
        converged = np.zeros(len(cells), dtype=bool)
        iterations = np.zeros(len(cells), dtype=np.int64)
        for it in range(params.max_iterations + 1):
            readout = backend.read(params.array, cells, params.read_voltage_V)
            g = readout.flat_conductance_S
            error = targets - g
            converged = np.abs(error) <= params.tolerance_rel * targets
            last = converged.all() or it == params.max_iterations
            # the read that decides is the final state: no extra read whose noise could disagree
            ctx.log_readout(readout, kind=FINAL if last else KIND, step=it)
            if last_g is not None:
                self._update_steps(step, g - last_g, last_counts, last_sign)
            ctx.progress.advance(1, status=f"{int(converged.sum())}/{len(cells)} within tolerance")
            if last:
                break
            iterations[~converged] = it + 1
            counts = np.zeros(len(cells), dtype=np.int64)
            sign = np.where(error > 0, 1.0, -1.0)
            for polarity, pulse, mask in (
                ("set", set_pulse, ~converged & (error > 0)),
                ("reset", reset_pulse, ~converged & (error < 0)),
            ):
                if not mask.any():
                    continue
                counts[mask] = pulse_counts(error[mask], step[polarity], params.max_pulses_per_iteration)
                matrix = np.zeros(spec.shape, dtype=np.int64)
                matrix[cells[mask, 0], cells[mask, 1]] = counts[mask]
                t = backend.now()
                backend.program(params.array, matrix, pulse)
                ctx.log_pulses(
                    purpose=f"verify-{polarity}",
                    array=params.array,
                    row=cells[mask, 0],
                    col=cells[mask, 1],
                    amplitude_V=pulse.amplitude_V,
                    width_s=pulse.width_s,
                    count=counts[mask],
                    t_s=t,
                    step=it,
                )
            last_g, last_counts, last_sign = g, counts, sign
        missed = cells[~converged]
        ctx.log_event(
            "write-verify-result",
            converged=int(converged.sum()),
            cells=len(cells),
            not_converged=missed.tolist(),
            iterations_max=int(iterations.max()) if len(iterations) else 0,
            step_set_S=step["set"],
            step_reset_S=step["reset"],
        )

    @staticmethod
    def _update_steps(step: dict[str, float], dg: np.ndarray, counts: np.ndarray, sign: np.ndarray) -> None:
        for polarity, s in (("set", 1.0), ("reset", -1.0)):
            moved = (counts > 0) & (sign == s)
            if not moved.any():
                continue
            per_pulse = s * dg[moved] / counts[moved]
            per_pulse = per_pulse[per_pulse > 0]
            if per_pulse.size:
                step[polarity] = float(np.median(per_pulse))

    def plot(self, store: Store, run_id: int, path: Path) -> Path | None:
        df = store.readings_df(run_id)
        final = df[df["kind"] == FINAL]
        verify = df[df["kind"].isin([KIND, FINAL])]
        if final.empty:
            return None
        events = store.events_df(run_id)
        detail = events[events["kind"] == "targets"]["detail"].iloc[0]
        targets = {tuple(c): t for c, t in zip(detail["cells"], detail["target_S"], strict=True)}
        tol = float(detail["tolerance_rel"])
        plt = use_agg()
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
        t = np.array([targets[(r, c)] for r, c in zip(final["row"], final["col"], strict=True)])
        g = final["conductance_S"].to_numpy()
        ok = np.abs(g - t) <= tol * t
        ax1.plot(t * 1e6, g * 1e6, "o", ms=3, color="tab:green", label=f"converged ({ok.sum()})")
        ax1.plot(t[~ok] * 1e6, g[~ok] * 1e6, "x", color="tab:red", label=f"not converged ({(~ok).sum()})")
        lim = [min(t.min(), g.min()) * 1e6 * 0.9, max(t.max(), g.max()) * 1e6 * 1.1]
        ax1.plot(lim, lim, "k-", lw=0.6)
        ax1.set(xlabel="target (uS)", ylabel="final conductance (uS)", title="final state")
        ax1.legend(fontsize=8)
        for (r, c), part in verify.groupby(["row", "col"]):
            target = targets[(r, c)]
            err = np.abs(part["conductance_S"].to_numpy() - target) / target
            ax2.semilogy(part["step"], np.maximum(err, 1e-6), "-", lw=0.5, alpha=0.4, color="tab:blue")
        ax2.axhline(tol, color="k", ls="--", lw=0.8, label=f"tolerance {tol:g}")
        ax2.set(xlabel="iteration", ylabel="|G - target| / target", title="convergence")
        ax2.legend(fontsize=8)
        fig.suptitle(f"run {run_id}: write-verify", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=130)
        plt.close(fig)
        return path
