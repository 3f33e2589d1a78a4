"""The steps protocols are composed of, like bluesky's ``plan_stubs``.

A protocol's ``execute`` reads like the methods section of a paper: a short composition of these
steps. Each step does one thing on the backend through the :class:`~hil.protocol.RunContext` and
commits what it measured before it returns.

- :func:`sweep_points` / :func:`check_sweep_steps`: the voltages (V) of a DC sweep, and the check
  that a sweep has a sensible number of steps (parameter validators call it).
- :func:`log_iv` / :func:`sweep_iv`: a DC I-V sweep of one cell, logged as readings.
- :func:`strong_reset`: a train of strong-reset pulses, logged with ``purpose=reset``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hil.protocol import RunContext
from hil.types import CellsLike, IVResult, Pulse, PulseTrainResult

#: most steps a DC sweep may have
MAX_SWEEP_STEPS = 100_000


def sweep_points(start_V: float, stop_V: float, step_V: float, return_sweep: bool = False) -> np.ndarray:
    """Voltages (V) of a DC sweep: ``start_V`` to ``stop_V`` evenly, in the whole number of steps
    nearest to ``|stop_V - start_V| / step_V``, rounded to 1 nV; with ``return_sweep`` back down to
    ``start_V`` (the turning point once)."""
    n = int(round(abs(stop_V - start_V) / step_V))
    up = np.round(np.linspace(start_V, stop_V, n + 1), 9)
    return np.concatenate([up, up[-2::-1]]) if return_sweep else up


def signed_extreme(values: np.ndarray) -> float:
    """The value of largest magnitude, its sign kept: what a voltage-limit check is handed, so
    that its message shows the value as given (``-50``, not ``50``). NaN wins (the check then
    reports "a finite number")."""
    v = np.asarray(values, dtype=float).reshape(-1)
    return float(v[np.argmax(np.abs(v))])


def check_sweep_steps(
    start_V: float,
    stop_V: float,
    step_V: float,
    step_name: str = "v_step_V",
    span: str | None = None,
    single_point_ok: bool = False,
) -> None:
    """Check that a sweep from ``start_V`` to ``stop_V`` in ``step_V`` steps has 1 to
    :data:`MAX_SWEEP_STEPS` steps (with ``single_point_ok``: at most that many, a single point
    allowed).

    Raises:
        ValueError: naming ``step_name`` and the sweep (``span``; default ``from START to STOP V``);
            parameter validators raise it as the parameter error.
    """
    n = abs(stop_V - start_V) / step_V
    if single_point_ok:
        if n > MAX_SWEEP_STEPS:
            raise ValueError(
                f"{step_name} = {step_V:g} V gives {n:.0f} points; allowed: at most {MAX_SWEEP_STEPS}"
            )
        return
    if n < 1 or n > MAX_SWEEP_STEPS:
        where = span if span is not None else f"from {start_V:g} to {stop_V:g} V"
        raise ValueError(
            f"{step_name} = {step_V:g} V gives {n:.0f} steps {where}; allowed: 1 to {MAX_SWEEP_STEPS} steps"
        )


def log_iv(ctx: RunContext, iv: IVResult, kind: str, **indices: Any) -> int:
    """Commit a DC I-V sweep as readings, one per point: the measured voltage (V) and current (A),
    the chord conductance ``I / V`` (S; empty where ``V = 0``) and the time (s), with ``kind`` and
    the index columns ``indices`` (``step``, ``cycle``, ``pulse``: scalars or one per point).
    Returns the number of readings."""
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(iv.voltage_V != 0, iv.current_A / iv.voltage_V, np.nan)
    conductance_S = g.astype(object)
    conductance_S[~np.isfinite(g)] = None
    return ctx.log_readings(
        kind=kind,
        array=iv.array,
        row=iv.row,
        col=iv.col,
        voltage_V=iv.voltage_V,
        current_A=iv.current_A,
        conductance_S=conductance_S,
        t_s=iv.t_s,
        **indices,
    )


def sweep_iv(
    ctx: RunContext,
    array: str,
    row: int,
    col: int,
    voltages_V: np.ndarray,
    compliance_A: float,
    dwell_s: float,
    kind: str,
    **indices: Any,
) -> IVResult:
    """Sweep cell ``(row, col)`` of ``array`` through ``voltages_V``, each point held ``dwell_s`` (s)
    with the current limited to ``compliance_A`` (A), and commit the sweep (:func:`log_iv`)."""
    iv = ctx.backend.iv_sweep(array, row, col, voltages_V, compliance_A, dwell_s)
    log_iv(ctx, iv, kind, **indices)
    return iv


def strong_reset(
    ctx: RunContext,
    array: str,
    cells: CellsLike,
    pulse: Pulse,
    pulses: int,
    purpose: str = "reset",
    checkpoint: dict[str, Any] | None = None,
    **indices: Any,
) -> PulseTrainResult:
    """Bring ``cells`` of ``array`` near Gmin: a train of ``pulses`` strong-reset pulses ``pulse``
    (negative amplitude), committed with ``purpose`` (``reset``) and ``indices``. With
    ``checkpoint``, the checkpoint the reset completes is committed in the same transaction."""
    train = ctx.backend.pulse(array, cells, pulse, pulses)
    with ctx.store.batch():
        ctx.log_train(train, purpose=purpose, **indices)
        if checkpoint is not None:
            ctx.checkpoint(**checkpoint)
    return train
