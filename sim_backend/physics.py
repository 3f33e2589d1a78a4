"""Closed-form device physics of the twin, vectorised over any number of cells.

The device state is the normalised conductance ``x = (G - Gmin) / (Gmax - Gmin)`` in ``[0, 1]``.
Every function here is a pure numpy function of arrays, so tests can compare it against the
closed forms in the docstrings and the array model can apply it to a whole array at once.
"""

from __future__ import annotations

import math

import numpy as np

from sim_backend.preset import DevicePreset


def step_strength(preset: DevicePreset, amplitude_V: float, width_s: float) -> tuple[str, float]:
    """Polarity and number of nominal steps ``s`` one pulse of ``amplitude_V`` and ``width_s`` makes.

    ``s = (width_s / w_ref) ** width_exponent * exp((|V| - V_ref) / V_acc)`` at or above the
    polarity's threshold, 0 below it. Returns ``("set" | "reset" | "none", s)``.
    """
    v = float(amplitude_V)
    if v >= preset.set_threshold_V:
        v_ref, polarity = preset.set_reference_V, "set"
    elif v <= -preset.reset_threshold_V:
        v_ref, polarity = preset.reset_reference_V, "reset"
    else:
        return "none", 0.0
    s = (width_s / preset.reference_width_s) ** preset.width_exponent * math.exp(
        (abs(v) - v_ref) / preset.voltage_acceleration_V
    )
    return polarity, s


def potentiate(x: np.ndarray, n_steps: np.ndarray | float, nu: float, n_states: int) -> np.ndarray:
    """State after ``n_steps`` nominal potentiation steps from ``x`` (no noise), clipped to [0, 1].

    One step is ``x' = a x + b`` with ``a = exp(-nu / N)``, ``b = (1 - a) / (1 - exp(-nu))``, so
    ``n`` steps give ``x_n = a**n x + (1 - a**n) / (1 - exp(-nu))``; for ``nu = 0``,
    ``x_n = x + n / N``. ``n`` may be fractional (a pulse stronger or weaker than nominal).
    """
    n = np.asarray(n_steps, dtype=float)
    if nu == 0.0:
        out = x + n / n_states
    else:
        an = np.exp(-nu * n / n_states)
        out = an * x + (1.0 - an) / (-math.expm1(-nu))
    return np.minimum(np.maximum(out, 0.0), 1.0)


def depress(x: np.ndarray, n_steps: np.ndarray | float, nu: float, n_states: int) -> np.ndarray:
    """State after ``n_steps`` nominal depression steps: the potentiation map mirrored, on ``1 - x``."""
    return 1.0 - potentiate(1.0 - x, n_steps, nu, n_states)


def iv_shape(voltage_V: np.ndarray | float, read_reference_V: float, v0_V: float | None) -> np.ndarray:
    """``f(V)`` with ``I = G * f(V)``: ``V`` (ohmic) or ``V_r sinh(V / V0) / sinh(V_r / V0)``.

    ``f(V_r) = V_r`` either way, so ``G`` is the conductance read at the reference voltage.
    """
    v = np.asarray(voltage_V, dtype=float)
    if v0_V is None:
        return v
    return read_reference_V * np.sinh(v / v0_V) / math.sinh(read_reference_V / v0_V)


def iv_shape_inverse(f_value: np.ndarray | float, read_reference_V: float, v0_V: float | None) -> np.ndarray:
    """The voltage ``V`` with ``f(V) = f_value`` (inverse of :func:`iv_shape`)."""
    f = np.asarray(f_value, dtype=float)
    if v0_V is None:
        return f
    return v0_V * np.arcsinh(f * math.sinh(read_reference_V / v0_V) / read_reference_V)


def retention_decay(x: np.ndarray, elapsed_s: np.ndarray | float, tau_s: float | None) -> np.ndarray:
    """Retention drift towards Gmin: ``x(t) = x_p * exp(-t / tau)`` (unchanged when ``tau`` is None)."""
    if tau_s is None:
        return x
    return x * np.exp(-np.asarray(elapsed_s, dtype=float) / tau_s)
